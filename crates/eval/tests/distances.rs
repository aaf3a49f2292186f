//! FID's Fréchet distance and KID on fixed feature sets against pytorch-fid (scipy's `sqrtm`),
//! against an exact 50-digit computation, and against torch-fidelity's and clean-fid's KID
//! formula, on well-conditioned and on rank-deficient covariances.

mod common;

use common::{floats, json};
use ddpm_eval::{FeatureStats, Features, frechet_distance, kid};

fn features(rows: &serde_json::Value) -> Features {
    let rows: Vec<Vec<f64>> = rows.as_array().unwrap().iter().map(floats).collect();
    Features {
        dims: rows[0].len(),
        values: rows.concat().into_iter().map(|v| v as f32).collect(),
    }
}

/// Mean and covariance (`N − 1`) of f64 rows, two-pass, as numpy computes them: the distance
/// then sees exactly pytorch-fid's inputs.
fn f64_stats(rows: &serde_json::Value) -> FeatureStats {
    let rows: Vec<Vec<f64>> = rows.as_array().unwrap().iter().map(floats).collect();
    let (n, d) = (rows.len() as f64, rows[0].len());
    let mean: Vec<f64> = (0..d)
        .map(|j| rows.iter().map(|r| r[j]).sum::<f64>() / n)
        .collect();
    let mut covariance = vec![0.0; d * d];
    for j in 0..d {
        for k in 0..d {
            let sum: f64 = rows
                .iter()
                .map(|r| (r[j] - mean[j]) * (r[k] - mean[k]))
                .sum();
            covariance[j * d + k] = sum / (n - 1.0);
        }
    }
    FeatureStats {
        count: rows.len(),
        mean,
        covariance,
        sample: Features {
            dims: d,
            values: Vec::new(),
        },
    }
}

/// On the same f64 statistics: within 1e-9 of pytorch-fid where scipy's square root is accurate
/// (well-conditioned), within 1e-10 of the exact value everywhere it is known, including a
/// singular case where pytorch-fid is 1e-8 off.
#[test]
fn frechet_distances_match_pytorch_fid_and_the_exact_values() {
    for case in json("distances.json")["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let ours = frechet_distance(&f64_stats(&case["x"]), &f64_stats(&case["y"])).unwrap();
        let pytorch_fid = case["pytorch_fid"].as_f64().unwrap();
        let tolerance = match name {
            "well_conditioned" | "small_exact" => 1e-9,
            _ => 1e-6,
        };
        assert!(
            (ours - pytorch_fid).abs() <= tolerance * pytorch_fid.abs(),
            "{name}: ours {ours}, pytorch-fid {pytorch_fid}"
        );
        if let Some(exact) = case["exact"].as_f64() {
            assert!(
                (ours - exact).abs() <= 1e-10 * exact.abs(),
                "{name}: ours {ours}, exact {exact}"
            );
        }
    }
}

/// The whole path from f32 features: their statistics, then the distance.
#[test]
fn statistics_of_f32_features_give_pytorch_fids_distance() {
    let case = &json("distances.json")["cases"][0];
    let (x, y) = (features(&case["x"]), features(&case["y"]));
    let ours = frechet_distance(&FeatureStats::of(&x), &FeatureStats::of(&y)).unwrap();
    let pytorch_fid = case["pytorch_fid"].as_f64().unwrap();
    assert!(
        (ours - pytorch_fid).abs() <= 1e-5 * pytorch_fid,
        "{ours} vs {pytorch_fid}"
    );
}

#[test]
fn kid_over_the_whole_sets_matches_the_reference_formula() {
    for case in json("distances.json")["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let (x, y) = (features(&case["x"]), features(&case["y"]));
        let whole = kid(&x, &y, 3, x.rows(), 0).unwrap();
        let reference = case["kid"].as_f64().unwrap();
        assert_eq!(whole.subset_size, x.rows());
        assert!(
            (whole.mean - reference).abs() <= 1e-4 * (1.0 + reference.abs()),
            "{name}: ours {}, reference {reference}",
            whole.mean
        );
        assert!(whole.std <= 1e-9, "{name}: every subset is the whole set");
    }
}

#[test]
fn kid_subsets_are_seeded_and_too_few_images_are_refused() {
    let case = &json("distances.json")["cases"][0];
    let (x, y) = (features(&case["x"]), features(&case["y"]));
    let a = kid(&x, &y, 20, 50, 7).unwrap();
    assert_eq!(a, kid(&x, &y, 20, 50, 7).unwrap());
    assert_eq!((a.subsets, a.subset_size), (20, 50));
    assert!(a.std > 0.0);
    let one = Features {
        dims: x.dims,
        values: x.row(0).to_vec(),
    };
    assert!(kid(&one, &y, 5, 100, 0).is_err());
}
