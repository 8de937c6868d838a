//! Which vector instructions recur's own kernels use: the widest the CPU has, found at run time, so one portable
//! binary runs AVX-512 code on a CPU that has it and AVX2 code on one that does not.
//!
//! The environment variable `RECUR_SIMD` (`avx512`, `avx2` or `portable`) caps the choice, read once per process:
//! to compare the paths side by side on one machine, or to rule a vector path out when chasing a difference. A
//! cap above what the CPU has changes nothing.

use std::any::TypeId;
use std::sync::OnceLock;

/// A family of vector instructions, from none to the widest recur has kernels for. Ordered: a higher level
/// implies the lower ones on every CPU recur dispatches for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum SimdLevel {
    /// Plain Rust, whatever the compiler makes of it for the build's target.
    Portable,
    /// 256-bit AVX2 with fused multiply-adds (x86-64).
    Avx2,
    /// 512-bit AVX-512 Foundation, with AVX2 and FMA (x86-64).
    Avx512,
}

impl SimdLevel {
    /// The level's name, as `RECUR_SIMD` spells it.
    pub fn name(self) -> &'static str {
        match self {
            SimdLevel::Portable => "portable",
            SimdLevel::Avx2 => "avx2",
            SimdLevel::Avx512 => "avx512",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512].into_iter().find(|l| l.name() == s.trim())
    }
}

/// The level recur's kernels use in this process: what the CPU has, capped by `RECUR_SIMD` when it is set to a
/// level's name (any other value is ignored).
pub fn level() -> SimdLevel {
    static LEVEL: OnceLock<SimdLevel> = OnceLock::new();
    *LEVEL.get_or_init(|| {
        let cap = std::env::var("RECUR_SIMD").ok().and_then(|s| SimdLevel::parse(&s)).unwrap_or(SimdLevel::Avx512);
        detected().min(cap)
    })
}

/// The widest level this CPU supports.
pub fn detected() -> SimdLevel {
    #[cfg(target_arch = "x86_64")]
    {
        let avx2 = std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma");
        if avx2 && std::arch::is_x86_feature_detected!("avx512f") {
            return SimdLevel::Avx512;
        }
        if avx2 {
            return SimdLevel::Avx2;
        }
    }
    SimdLevel::Portable
}

/// Whether the stream kernel ([`super::rowvec`]) prefetches its weights ahead in software. It pays on Intel and
/// costs on AMD, so it follows the CPU's vendor unless the environment variable `RECUR_PREFETCH` is `on` or `off`:
/// on an Intel Xeon it made `lstm stream B1 I128 H256 L2` 19–24% faster, while on an AMD EPYC (Zen 4), whose
/// hardware prefetcher already keeps a sequential stream of loads fed, the step ran ×0.82 without it. (The tile
/// kernel keeps its prefetch on both; docs/performance.md has the figures.)
#[cfg(target_arch = "x86_64")]
pub fn software_prefetch() -> bool {
    static PREFETCH: OnceLock<bool> = OnceLock::new();
    *PREFETCH.get_or_init(|| match std::env::var("RECUR_PREFETCH").as_deref() {
        Ok("on") => true,
        Ok("off") => false,
        _ => cpu_is_intel(),
    })
}

/// Whether the CPU's vendor string is Intel's.
#[cfg(target_arch = "x86_64")]
pub(crate) fn cpu_is_intel() -> bool {
    // Leaf 0 of `cpuid`: the vendor string, in `ebx`, `edx`, `ecx`.
    let id = std::arch::x86_64::__cpuid(0);
    let vendor: Vec<u8> = [id.ebx, id.edx, id.ecx].iter().flat_map(|r| r.to_le_bytes()).collect();
    vendor == b"GenuineIntel"
}

/// Element-wise work written once, in plain generic Rust, and compiled for every level: [`run_vectorised`]
/// calls [`Vectorised::run`] from inside a function built for the level's instructions, so a loop that the
/// compiler vectorises comes out 16 lanes wide on an AVX-512 CPU and 8 on an AVX2 one, from the same source and
/// with the same results (the same operations in the same order; the compiler fuses no multiply and add on its
/// own, and an explicit `mul_add` rounds once on every path, an FMA instruction in the wrappers, which enable it).
///
/// `run` must be `#[inline(always)]`: only code inlined into the wrappers gets their instructions.
pub trait Vectorised {
    /// The work.
    fn run(self);
}

/// Runs `work`, element-wise arithmetic on slices of `T`, built for [`level`]'s instructions when `T` is `f32`,
/// and as plain code for `f64` (the reference type, whose exact libm functions do not vectorise). The type test is
/// decided at compile time.
pub fn vectorised<T: 'static, V: Vectorised>(work: V) {
    if TypeId::of::<T>() == TypeId::of::<f32>() { run_vectorised(work) } else { work.run() }
}

/// Runs `work` built for [`level`]'s instructions.
pub fn run_vectorised<V: Vectorised>(work: V) {
    #[cfg(target_arch = "x86_64")]
    match level() {
        // SAFETY: the CPU supports AVX-512F and FMA (the level says so), which is all the wrapper requires.
        SimdLevel::Avx512 => return unsafe { run_avx512(work) },
        // SAFETY: the CPU supports AVX2 and FMA (the level says so), which is all the wrapper requires.
        SimdLevel::Avx2 => return unsafe { run_avx2(work) },
        SimdLevel::Portable => {}
    }
    work.run()
}

/// # Safety
/// The CPU must support AVX-512F and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,fma")]
pub(crate) unsafe fn run_avx512<V: Vectorised>(work: V) {
    work.run()
}

/// # Safety
/// The CPU must support AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(crate) unsafe fn run_avx2<V: Vectorised>(work: V) {
    work.run()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_levels_are_ordered() {
        for l in [SimdLevel::Portable, SimdLevel::Avx2, SimdLevel::Avx512] {
            assert_eq!(SimdLevel::parse(l.name()), Some(l));
        }
        assert_eq!(SimdLevel::parse("sse"), None);
        assert!(SimdLevel::Portable < SimdLevel::Avx2 && SimdLevel::Avx2 < SimdLevel::Avx512);
        assert!(level() <= detected());
    }
}
