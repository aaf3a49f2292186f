//! The Winograd passes against the patch-matrix kernels (themselves checked against burn's
//! convolutions): outputs, input and weight gradients, on maps that the tiles cover exactly and
//! on maps where the last tiles overhang, with channel counts that do not fill the lanes.

use super::*;
use crate::conv::batch;
use crate::testing::error_and_scale;

/// Deterministic values in [-1, 1).
fn values(len: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(6_364_136_223_846_793_005) | 1;
    (0..len)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            ((state >> 40) as f32 / (1u64 << 23) as f32) - 1.0
        })
        .collect()
}

/// `[batch, Cin, Cout, height, width]`: maps the tiles cover exactly, maps they overhang, maps
/// smaller than one tile, a batch of more tiles than one pass takes (two groups of images).
const SHAPES: [[usize; 5]; 7] = [
    [2, 5, 3, 8, 8],
    [3, 17, 6, 12, 9],
    [1, 3, 18, 11, 13],
    [2, 4, 5, 4, 4],
    [3, 6, 2, 5, 7],
    [2, 3, 4, 1, 2],
    [17, 2, 3, 64, 64],
];

/// The largest |ours − reference| over the largest |reference|.
fn relative_error(ours: &[f32], reference: &[f32]) -> f32 {
    let (error, scale) = error_and_scale(ours, reference);
    error / scale
}

fn check([batch, cin, cout, height, width]: [usize; 5], tolerance: f32) {
    let g = Geometry::new(
        [batch, cin, height, width],
        [cout, cin, 3, 3],
        [1, 1],
        [1, 1],
    )
    .expect("a shape that fits");
    let x = values(batch * cin * height * width, 1);
    let weight = values(cout * cin * 9, 2);
    let bias = values(cout, 3);
    let dy = values(batch * cout * height * width, 4);
    let what = format!("{g:?}");
    let forward_error = relative_error(
        &forward(&x, &weight, Some(&bias), &g),
        &batch::forward(&x, &weight, Some(&bias), &g),
    );
    assert!(forward_error <= tolerance, "output {forward_error}: {what}");
    let input_error = relative_error(
        &input_grad(&weight, &dy, &g),
        &batch::transposed(&weight, &dy, None, &g),
    );
    assert!(
        input_error <= tolerance,
        "input gradient {input_error}: {what}"
    );
    let weight_error = relative_error(&weight_grad(&x, &dy, &g), &batch::weight_grad(&x, &dy, &g));
    assert!(
        weight_error <= tolerance,
        "weight gradient {weight_error}: {what}"
    );
}

#[test]
fn passes_match_the_patch_matrix_kernels() {
    for shape in SHAPES {
        check(shape, 1e-5);
    }
}

/// The U-Nets' widths: the products sum over many channels and tiles. The transforms scale
/// values by up to 8 on the way, so the error (7.7e-6 here) is some 50× the direct product's.
#[test]
fn wide_layers_match_the_patch_matrix_kernels() {
    check([2, 128, 64, 16, 16], 2e-5);
    check([2, 64, 96, 8, 8], 1e-5);
}

#[test]
fn only_plain_3x3_layers_with_enough_channels_apply() {
    // (input, weight, stride, padding, applies)
    let cases = [
        ([1, 64, 16, 16], [64, 64, 3, 3], 1, 1, true),
        ([1, 256, 8, 8], [512, 256, 3, 3], 1, 1, true),
        ([1, 64, 8, 8], [64, 64, 3, 3], 1, 1, false),
        ([1, 32, 16, 16], [64, 32, 3, 3], 1, 1, false),
        ([1, 512, 4, 4], [512, 512, 3, 3], 1, 1, false),
        ([1, 64, 16, 16], [64, 64, 3, 3], 2, 1, false),
        ([1, 64, 16, 16], [64, 64, 3, 3], 1, 0, false),
        ([1, 64, 16, 16], [64, 64, 1, 1], 1, 0, false),
    ];
    for (input, weight, stride, padding, expected) in cases {
        let g = Geometry::new(input, weight, [stride; 2], [padding; 2]).unwrap();
        assert_eq!(applies(&g), expected, "{g:?}");
    }
}
