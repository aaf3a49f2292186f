//! An f32 exponential that vectorises, for the kernels' sigmoids and softmaxes.

/// `e^x` for f32 in straight-line arithmetic that the compiler vectorises: `x = n·ln 2 + r` with
/// `|r| ≤ ln 2 / 2`, Cephes' degree-7 polynomial for `e^r` (within 2 ulp of `expf`), times `2^n`
/// built in the exponent bits. Inputs are clamped to `[-87.3, 88.3]`, where `e^x` is a normal
/// f32 and `n ≤ 127`: below it returns ~1.2e-38 instead of a subnormal or zero, above it ~2e38
/// instead of infinity, which a sigmoid cannot tell apart.
pub fn exp(x: f32) -> f32 {
    const LOG2_E: f32 = std::f32::consts::LOG2_E;
    // Adding 1.5·2²³ rounds to an integer, which lands in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.clamp(-87.3, 88.3);
    let shifted = x * LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    let exponent = shifted.to_bits().wrapping_sub(ROUNDER.to_bits());
    // ln 2 in two parts, so that n·ln2_hi is exact.
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let e_r = p * r * r + r + 1.0;
    e_r * f32::from_bits(exponent.wrapping_add(127) << 23)
}

#[cfg(test)]
mod tests {
    use super::exp;

    /// Against libm's over the range a sigmoid or a softmax meets, and clamped outside it.
    #[test]
    fn exp_is_within_a_few_ulp_of_libms() {
        for i in -87_000..=88_000 {
            let x = i as f32 * 1e-3 + 0.000_37;
            let (ours, libm) = (exp(x), x.exp());
            let ulp = (libm.to_bits() as i64 - ours.to_bits() as i64).abs();
            assert!(ulp <= 2, "exp({x}) = {ours}, libm {libm}");
        }
        assert!(exp(-200.0) > 0.0 && exp(-200.0) < 1.3e-38);
        assert!(exp(200.0).is_finite() && exp(200.0) > 1e38);
    }
}
