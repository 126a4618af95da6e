//! Counter-based randomness: every random quantity of the simulator is a pure
//! function of `(seed, purpose, entity, index)`, or comes from an RNG stream
//! private to one entity and purpose.
//!
//! This is what makes counterfactual ground truth possible: adding injected
//! packets to a run must not shift a single draw of the background (service
//! times, stalls, traffic), so no draw may depend on how many other draws came
//! before it in a shared sequence.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

/// Purposes, so two uses of the same entity never share draws.
pub mod purpose {
    pub const TRAFFIC: u64 = 1;
    pub const STALLS: u64 = 2;
    pub const INJECT: u64 = 3;
    pub const SERVICE: u64 = 4;
    pub const RATE_SLOT: u64 = 5;
    pub const NAT_PORT: u64 = 6;
    pub const HOSTS: u64 = 7;
    pub const ARRIVALS: u64 = 8;
}

/// SplitMix64 finalizer: a bijective, well-mixing 64-bit hash.
#[inline]
pub fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Hash of `(seed, purpose, entity, index)`.
#[inline]
pub fn mix(seed: u64, purpose: u64, entity: u64, index: u64) -> u64 {
    splitmix64(seed ^ splitmix64(purpose ^ splitmix64(entity ^ splitmix64(index))))
}

/// Uniform in `[0, 1)` from a hash.
#[inline]
pub fn unit(h: u64) -> f64 {
    (h >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// An RNG stream private to `(seed, purpose, entity)`.
pub fn stream(seed: u64, purpose: u64, entity: u64) -> ChaCha8Rng {
    ChaCha8Rng::seed_from_u64(mix(seed, purpose, entity, 0x5EED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_is_in_range_and_spread() {
        let mut lo = 0;
        for i in 0..10_000u64 {
            let u = unit(mix(1, 2, 3, i));
            assert!((0.0..1.0).contains(&u));
            if u < 0.5 {
                lo += 1;
            }
        }
        assert!((4700..5300).contains(&lo), "{lo}");
    }

    #[test]
    fn different_purposes_differ() {
        assert_ne!(mix(1, 1, 0, 0), mix(1, 2, 0, 0));
        assert_ne!(mix(1, 1, 0, 0), mix(2, 1, 0, 0));
    }
}
