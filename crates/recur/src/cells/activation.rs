//! The activation functions ONNX's recurrent operators accept in their `activations` attribute, and the clip
//! they may apply before each of them. PyTorch's cells use only the sigmoid and tanh (and ReLU for an RNN); the
//! others come from models made elsewhere (Keras, TensorFlow, ONNX's own tests).

use serde::{Deserialize, Serialize};

use super::blocks::{BLOCK, lanes};
use crate::error::{Error, Result};
use crate::kernels::Real;

/// An activation function, with its parameters, as ONNX names and defines them:
///
/// | name | `f(x)` |
/// |---|---|
/// | `Sigmoid` | `1 / (1 + e^{−x})` |
/// | `Tanh` | `tanh x` |
/// | `Relu` | `max(0, x)` |
/// | `HardSigmoid` | `min(max(αx + β, 0), 1)` |
/// | `Affine` | `αx + β` |
/// | `LeakyRelu` | `x` for `x ≥ 0`, else `αx` |
/// | `ThresholdedRelu` | `x` for `x > α`, else 0 |
/// | `ScaledTanh` | `α tanh(βx)` |
/// | `Elu` | `x` for `x ≥ 0`, else `α(eˣ − 1)` |
/// | `Softsign` | `x / (1 + |x|)` |
/// | `Softplus` | `ln(1 + eˣ)` |
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "name")]
pub enum Activation {
    /// `1 / (1 + e^{−x})`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `max(0, x)`.
    Relu,
    /// `min(max(αx + β, 0), 1)` (ONNX's defaults α = 0.2, β = 0.5).
    HardSigmoid {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `αx + β` (ONNX's defaults α = 1, β = 0).
    Affine {
        /// Slope.
        alpha: f32,
        /// Offset.
        beta: f32,
    },
    /// `x` for `x ≥ 0`, else `αx` (ONNX's default α = 0.01).
    LeakyRelu {
        /// Slope below zero.
        alpha: f32,
    },
    /// `x` for `x > α`, else 0 (ONNX's default α = 1).
    ThresholdedRelu {
        /// Threshold.
        alpha: f32,
    },
    /// `α tanh(βx)` (ONNX's defaults α = β = 1).
    ScaledTanh {
        /// Output scale.
        alpha: f32,
        /// Input scale.
        beta: f32,
    },
    /// `x` for `x ≥ 0`, else `α(eˣ − 1)` (ONNX's default α = 1).
    Elu {
        /// Scale below zero.
        alpha: f32,
    },
    /// `x / (1 + |x|)`.
    Softsign,
    /// `ln(1 + eˣ)`.
    Softplus,
}

impl Activation {
    /// ONNX's name of the function (`"Sigmoid"`, `"LeakyRelu"`, …).
    pub fn name(self) -> &'static str {
        match self {
            Activation::Sigmoid => "Sigmoid",
            Activation::Tanh => "Tanh",
            Activation::Relu => "Relu",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::Affine { .. } => "Affine",
            Activation::LeakyRelu { .. } => "LeakyRelu",
            Activation::ThresholdedRelu { .. } => "ThresholdedRelu",
            Activation::ScaledTanh { .. } => "ScaledTanh",
            Activation::Elu { .. } => "Elu",
            Activation::Softsign => "Softsign",
            Activation::Softplus => "Softplus",
        }
    }

    /// The function named `name` (ONNX's names, any case), with `alpha` and `beta` where it takes them and
    /// ONNX's defaults where they are `None`.
    pub fn from_name(name: &str, alpha: Option<f32>, beta: Option<f32>) -> Result<Self> {
        let a = |default: f32| alpha.unwrap_or(default);
        let b = |default: f32| beta.unwrap_or(default);
        Ok(match name.to_ascii_lowercase().as_str() {
            "sigmoid" => Activation::Sigmoid,
            "tanh" => Activation::Tanh,
            "relu" => Activation::Relu,
            "hardsigmoid" => Activation::HardSigmoid { alpha: a(0.2), beta: b(0.5) },
            "affine" => Activation::Affine { alpha: a(1.0), beta: b(0.0) },
            "leakyrelu" => Activation::LeakyRelu { alpha: a(0.01) },
            "thresholdedrelu" => Activation::ThresholdedRelu { alpha: a(1.0) },
            "scaledtanh" => Activation::ScaledTanh { alpha: a(1.0), beta: b(1.0) },
            "elu" => Activation::Elu { alpha: a(1.0) },
            "softsign" => Activation::Softsign,
            "softplus" => Activation::Softplus,
            _ => {
                return Err(Error::config(format!(
                    "unknown activation `{name}`; expected one of Sigmoid, Tanh, Relu, HardSigmoid, Affine, \
                     LeakyRelu, ThresholdedRelu, ScaledTanh, Elu, Softsign, Softplus"
                )));
            }
        })
    }

    /// How many of ONNX's `activation_alpha` and `activation_beta` values the function takes.
    pub fn parameter_counts(self) -> (usize, usize) {
        match self {
            Activation::HardSigmoid { .. } | Activation::Affine { .. } | Activation::ScaledTanh { .. } => (1, 1),
            Activation::LeakyRelu { .. } | Activation::ThresholdedRelu { .. } | Activation::Elu { .. } => (1, 0),
            _ => (0, 0),
        }
    }

    /// `(α, β)` of the function, `None` where it takes none.
    pub fn parameters(self) -> (Option<f32>, Option<f32>) {
        match self {
            Activation::HardSigmoid { alpha, beta }
            | Activation::Affine { alpha, beta }
            | Activation::ScaledTanh { alpha, beta } => (Some(alpha), Some(beta)),
            Activation::LeakyRelu { alpha } | Activation::ThresholdedRelu { alpha } | Activation::Elu { alpha } => {
                (Some(alpha), None)
            }
            _ => (None, None),
        }
    }

    /// Checks that the parameters are finite.
    pub fn validate(self) -> Result<()> {
        let (alpha, beta) = self.parameters();
        match alpha.into_iter().chain(beta).find(|v| !v.is_finite()) {
            Some(v) => Err(Error::config(format!("{} needs finite parameters, found {v}", self.name()))),
            None => Ok(()),
        }
    }

    /// `f(x)`.
    #[inline(always)]
    pub fn apply<T: Real>(self, x: T) -> T {
        let (zero, one) = (T::zero(), T::one());
        match self {
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.act_tanh(),
            Activation::Relu => x.max(zero),
            Activation::HardSigmoid { alpha, beta } => (real::<T>(alpha) * x + real::<T>(beta)).max(zero).min(one),
            Activation::Affine { alpha, beta } => real::<T>(alpha) * x + real::<T>(beta),
            Activation::LeakyRelu { alpha } => {
                if x >= zero {
                    x
                } else {
                    real::<T>(alpha) * x
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > real::<T>(alpha) {
                    x
                } else {
                    zero
                }
            }
            Activation::ScaledTanh { alpha, beta } => real::<T>(alpha) * (real::<T>(beta) * x).act_tanh(),
            Activation::Elu { alpha } => {
                if x >= zero {
                    x
                } else {
                    real::<T>(alpha) * (x.exp() - one)
                }
            }
            Activation::Softsign => x / (one + x.abs()),
            // `max(x, 0) + ln(1 + e^{−|x|})`: equal to `ln(1 + eˣ)`, without overflow for large `x`.
            Activation::Softplus => x.max(zero) + (-x.abs()).exp().ln_1p(),
        }
    }

    /// `f′(x)`, the derivative at the input `x` (one-sided where `f` has a kink: the value of the branch `apply`
    /// takes at `x`).
    #[inline(always)]
    pub fn derivative<T: Real>(self, x: T) -> T {
        let (zero, one) = (T::zero(), T::one());
        match self {
            Activation::Sigmoid => {
                let s = x.sigmoid();
                s * (one - s)
            }
            Activation::Tanh => {
                let t = x.act_tanh();
                one - t * t
            }
            Activation::Relu => {
                if x > zero {
                    one
                } else {
                    zero
                }
            }
            Activation::HardSigmoid { alpha, beta } => {
                let y = real::<T>(alpha) * x + real::<T>(beta);
                if y > zero && y < one { real::<T>(alpha) } else { zero }
            }
            Activation::Affine { alpha, .. } => real::<T>(alpha),
            Activation::LeakyRelu { alpha } => {
                if x >= zero {
                    one
                } else {
                    real::<T>(alpha)
                }
            }
            Activation::ThresholdedRelu { alpha } => {
                if x > real::<T>(alpha) {
                    one
                } else {
                    zero
                }
            }
            Activation::ScaledTanh { alpha, beta } => {
                let t = (real::<T>(beta) * x).act_tanh();
                real::<T>(alpha) * real::<T>(beta) * (one - t * t)
            }
            Activation::Elu { alpha } => {
                if x >= zero {
                    one
                } else {
                    real::<T>(alpha) * x.exp()
                }
            }
            Activation::Softsign => {
                let d = one + x.abs();
                one / (d * d)
            }
            Activation::Softplus => x.sigmoid(),
        }
    }
}

impl std::fmt::Display for Activation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.parameters() {
            (Some(alpha), Some(beta)) => write!(f, "{}({alpha}, {beta})", self.name()),
            (Some(alpha), None) => write!(f, "{}({alpha})", self.name()),
            _ => f.write_str(self.name()),
        }
    }
}

/// An activation's parameter as `T`.
#[inline(always)]
fn real<T: Real>(x: f32) -> T {
    <T as Real>::from_f32(x)
}

/// `f` on every lane of a block. The variant is matched once a block, so that each arm is a loop over the lanes
/// that the compiler vectorises (a match inside the loop would keep it scalar).
#[inline(always)]
pub(crate) fn activate<T: Real>(f: Activation, x: &[T; BLOCK]) -> [T; BLOCK] {
    let (zero, one) = (T::zero(), T::one());
    match f {
        Activation::Sigmoid => lanes(|l| x[l].sigmoid()),
        Activation::Tanh => lanes(|l| x[l].act_tanh()),
        Activation::Relu => lanes(|l| x[l].max(zero)),
        Activation::HardSigmoid { alpha, beta } => {
            let (a, b) = (real::<T>(alpha), real::<T>(beta));
            lanes(|l| (a * x[l] + b).max(zero).min(one))
        }
        Activation::Affine { alpha, beta } => {
            let (a, b) = (real::<T>(alpha), real::<T>(beta));
            lanes(|l| a * x[l] + b)
        }
        Activation::ScaledTanh { alpha, beta } => {
            let (a, b) = (real::<T>(alpha), real::<T>(beta));
            lanes(|l| a * (b * x[l]).act_tanh())
        }
        Activation::Softsign => lanes(|l| x[l] / (one + x[l].abs())),
        // The rest branch or call libm per value: serve them one lane at a time.
        other => lanes(|l| other.apply(x[l])),
    }
}

/// `f′` on every lane of a block of pre-activations that went through [`clip_block`]: 0 where the clip cut them.
#[inline(always)]
pub(crate) fn derivative_block<T: Real>(f: Activation, x: &[T; BLOCK], clip: Option<T>) -> [T; BLOCK] {
    let one = T::one();
    let d = match f {
        Activation::Sigmoid => lanes(|l| {
            let s = x[l].sigmoid();
            s * (one - s)
        }),
        Activation::Tanh => lanes(|l| {
            let t = x[l].act_tanh();
            one - t * t
        }),
        Activation::ScaledTanh { alpha, beta } => {
            let (a, b) = (real::<T>(alpha), real::<T>(beta));
            lanes(|l| {
                let t = (b * x[l]).act_tanh();
                a * b * (one - t * t)
            })
        }
        other => lanes(|l| other.derivative(x[l])),
    };
    match clip {
        Some(c) => lanes(|l| if x[l] > c || x[l] < -c { T::zero() } else { d[l] }),
        None => d,
    }
}

/// Every lane of a block clamped to `[−clip, clip]`, when set.
#[inline(always)]
pub(crate) fn clip_block<T: Real>(x: &[T; BLOCK], clip: Option<T>) -> [T; BLOCK] {
    match clip {
        Some(c) => lanes(|l| x[l].max(-c).min(c)),
        None => *x,
    }
}

/// Checks an optional clip threshold: positive and finite.
pub(crate) fn check_clip(clip: Option<f32>) -> Result<()> {
    match clip {
        Some(c) if !(c.is_finite() && c > 0.0) => {
            Err(Error::config(format!("clip must be a positive finite threshold, found {c}")))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> Vec<Activation> {
        vec![
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::Relu,
            Activation::HardSigmoid { alpha: 0.3, beta: 0.4 },
            Activation::Affine { alpha: 1.5, beta: -0.2 },
            Activation::LeakyRelu { alpha: 0.1 },
            Activation::ThresholdedRelu { alpha: 0.25 },
            Activation::ScaledTanh { alpha: 1.7, beta: 0.6 },
            Activation::Elu { alpha: 0.8 },
            Activation::Softsign,
            Activation::Softplus,
        ]
    }

    #[test]
    fn derivatives_match_central_differences_away_from_kinks() {
        let eps = 1e-6;
        for f in all() {
            for k in 0..41 {
                let x = -3.0 + 0.15 * k as f64 + 0.013;
                let numeric = (f.apply(x + eps) - f.apply(x - eps)) / (2.0 * eps);
                let analytic = f.derivative(x);
                assert!((numeric - analytic).abs() < 1e-6, "{f} at {x}: {analytic} vs {numeric}");
            }
        }
    }

    #[test]
    fn values_follow_onnx_definitions() {
        // Parameters are f32, so 0.2 is 0.2 to 1e-8.
        let close = |a: f64, b: f64| assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        close(Activation::HardSigmoid { alpha: 0.2, beta: 0.5 }.apply(1.0), 0.7);
        close(Activation::HardSigmoid { alpha: 0.2, beta: 0.5 }.apply(9.0), 1.0);
        close(Activation::ThresholdedRelu { alpha: 1.0 }.apply(0.5), 0.0);
        close(Activation::ThresholdedRelu { alpha: 1.0 }.apply(1.5), 1.5);
        close(Activation::Elu { alpha: 2.0 }.apply(-1.0), 2.0 * ((-1.0f64).exp() - 1.0));
        close(Activation::Softplus.apply(0.3), (1.0 + 0.3f64.exp()).ln());
        // No overflow where ln(1 + eˣ) would.
        assert_eq!(Activation::Softplus.apply(200.0f32), 200.0);
        close(Activation::ScaledTanh { alpha: 2.0, beta: 0.5 }.apply(1.0), 2.0 * 0.5f64.tanh());
    }

    #[test]
    fn names_parse_with_onnx_defaults_and_round_trip() {
        assert_eq!(Activation::from_name("LeakyRelu", None, None).unwrap(), Activation::LeakyRelu { alpha: 0.01 });
        assert_eq!(
            Activation::from_name("hardsigmoid", Some(0.1), None).unwrap(),
            Activation::HardSigmoid { alpha: 0.1, beta: 0.5 }
        );
        for f in all() {
            let (alpha, beta) = f.parameters();
            assert_eq!(Activation::from_name(f.name(), alpha, beta).unwrap(), f);
            let json = serde_json::to_string(&f).unwrap();
            assert_eq!(serde_json::from_str::<Activation>(&json).unwrap(), f, "{json}");
        }
        let err = Activation::from_name("Gelu", None, None).unwrap_err().to_string();
        assert!(err.contains("unknown activation `Gelu`"), "{err}");
        assert!(Activation::Elu { alpha: f32::NAN }.validate().is_err());
    }

    #[test]
    fn blocks_match_the_function_lane_by_lane_and_clip_cuts_values_and_gradients() {
        let x: [f64; BLOCK] = std::array::from_fn(|l| -3.1 + 0.4 * l as f64);
        for f in all() {
            let (y, d) = (activate(f, &x), derivative_block(f, &x, None));
            for l in 0..BLOCK {
                assert!((y[l] - f.apply(x[l])).abs() < 1e-12, "{f} at {}", x[l]);
                assert!((d[l] - f.derivative(x[l])).abs() < 1e-12, "{f}′ at {}", x[l]);
            }
        }
        let clipped = clip_block(&x, Some(2.0));
        assert_eq!((clipped[0], clipped[BLOCK - 1], clipped[5]), (-2.0, 2.0, x[5]));
        let affine = Activation::Affine { alpha: 1.0, beta: 0.0 };
        let d = derivative_block(affine, &x, Some(2.0));
        assert_eq!((d[0], d[5], d[BLOCK - 1]), (0.0, 1.0, 0.0));
        assert!(check_clip(Some(0.0)).is_err() && check_clip(Some(f32::INFINITY)).is_err());
        assert!(check_clip(Some(1.0)).is_ok() && check_clip(None).is_ok());
    }
}
