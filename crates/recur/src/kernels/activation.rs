//! Element-wise activations of the gates.

/// Logistic sigmoid, `σ(x) = 1 / (1 + e^{-x})`, written so that it neither overflows nor loses precision for
/// large `|x|`.
#[inline]
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Hyperbolic tangent.
#[inline]
pub fn tanh(x: f32) -> f32 {
    x.tanh()
}

/// Rectified linear unit, `max(x, 0)`.
#[inline]
pub fn relu(x: f32) -> f32 {
    if x > 0.0 { x } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigmoid_is_stable_and_symmetric() {
        for &x in &[-100.0f32, -10.0, -1.0, 0.0, 0.5, 10.0, 100.0] {
            let s = sigmoid(x);
            assert!(s.is_finite() && (0.0..=1.0).contains(&s));
            assert!((s + sigmoid(-x) - 1.0).abs() < 1e-6);
            let reference = 1.0 / (1.0 + (-(x as f64)).exp());
            assert!((s as f64 - reference).abs() < 1e-7, "{x}");
        }
    }

    #[test]
    fn relu_clamps_negatives() {
        assert_eq!(relu(-2.0), 0.0);
        assert_eq!(relu(3.0), 3.0);
    }
}
