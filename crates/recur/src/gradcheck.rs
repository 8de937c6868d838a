//! Finite-difference gradient checking, in `f64`: every hand-written backward in recur is tested against
//! central differences of its own forward, run through the same generic code at `f64`.

/// Central differences `(f(x + ε·eᵢ) − f(x − ε·eᵢ)) / 2ε` of a scalar function, for every element of `x`.
///
/// `x` is restored after each probe.
pub fn numeric_gradient(x: &mut [f64], eps: f64, mut f: impl FnMut(&[f64]) -> f64) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let saved = x[i];
            x[i] = saved + eps;
            let plus = f(x);
            x[i] = saved - eps;
            let minus = f(x);
            x[i] = saved;
            (plus - minus) / (2.0 * eps)
        })
        .collect()
}

/// Largest error of `analytic` against `numeric`, each relative to `max(1, |numeric|)`.
///
/// # Panics
/// When the lengths differ.
pub fn max_relative_error(analytic: &[f64], numeric: &[f64]) -> f64 {
    assert_eq!(analytic.len(), numeric.len(), "gradient lengths differ");
    analytic.iter().zip(numeric).map(|(a, n)| (a - n).abs() / n.abs().max(1.0)).fold(0.0, f64::max)
}

/// Checks an analytic gradient against central differences; `Err` names the worst element.
pub fn check(
    what: &str,
    x: &mut [f64],
    analytic: &[f64],
    tolerance: f64,
    f: impl FnMut(&[f64]) -> f64,
) -> Result<(), String> {
    let numeric = numeric_gradient(x, 1e-6, f);
    let (worst, err) = analytic
        .iter()
        .zip(&numeric)
        .map(|(a, n)| (a - n).abs() / n.abs().max(1.0))
        .enumerate()
        .fold((0, 0.0), |best, (i, e)| if e > best.1 { (i, e) } else { best });
    if err > tolerance {
        return Err(format!(
            "{what}: element {worst}: analytic {} vs numeric {} (relative error {err:.3e} > {tolerance:.0e})",
            analytic[worst], numeric[worst]
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_gradient_of_a_known_function() {
        // f(x) = x0² x1 + sin(x2): ∇f = (2 x0 x1, x0², cos x2).
        let mut x = vec![1.5, -2.0, 0.3];
        let f = |x: &[f64]| x[0] * x[0] * x[1] + x[2].sin();
        let analytic = vec![2.0 * 1.5 * -2.0, 1.5 * 1.5, 0.3f64.cos()];
        check("f", &mut x, &analytic, 1e-8, f).unwrap();
        let wrong = vec![analytic[0], analytic[1] + 1e-3, analytic[2]];
        let err = check("f", &mut x, &wrong, 1e-6, f).unwrap_err();
        assert!(err.contains("element 1"), "{err}");
        assert_eq!(x, vec![1.5, -2.0, 0.3], "x is restored");
    }
}
