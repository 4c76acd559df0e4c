//! Bucket arithmetic: which bucket a value falls in, and the values a bucket covers.
//!
//! Values `0..EXACT` get a bucket each. Above, a value whose highest set bit is
//! bit `e` lands in one of `SUB` buckets for `[2^e, 2^(e+1))`, chosen by the
//! `SUB_BITS` bits below the highest one.

/// Bits of a value, below its highest set bit, that choose a bucket.
const SUB_BITS: u32 = 3;
/// Buckets per power of two.
const SUB: u64 = 1 << SUB_BITS;
/// Values below this are counted exactly (one bucket per value).
const EXACT: u64 = 2 * SUB;

/// Number of buckets needed to cover every `u64`.
#[cfg(test)]
pub(crate) const NUM_BUCKETS: usize = bucket_index(u64::MAX) + 1;

/// The bucket holding `value`.
pub(crate) const fn bucket_index(value: u64) -> usize {
    if value < EXACT {
        return value as usize;
    }
    let top_bit = 63 - value.leading_zeros();
    let shift = top_bit - SUB_BITS;
    // `value >> shift` is in `SUB..2 * SUB`: the highest bit plus SUB_BITS below it.
    let sub = (value >> shift) - SUB;
    (shift as usize + 1) * SUB as usize + sub as usize
}

/// The smallest and largest value (both inclusive) that land in bucket `index`.
pub(crate) const fn bucket_bounds(index: usize) -> (u64, u64) {
    let index = index as u64;
    if index < EXACT {
        return (index, index);
    }
    let shift = index / SUB - 1;
    let low = (SUB + index % SUB) << shift;
    // For the last bucket this is exactly u64::MAX; no overflow.
    (low, low + ((1u64 << shift) - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_values_have_their_own_bucket() {
        for v in 0..EXACT {
            assert_eq!(bucket_index(v), v as usize);
            assert_eq!(bucket_bounds(v as usize), (v, v));
        }
    }

    #[test]
    fn buckets_tile_the_u64_range_without_gaps() {
        let mut next = 0u64;
        for index in 0..NUM_BUCKETS {
            let (low, high) = bucket_bounds(index);
            assert_eq!(
                low,
                next,
                "bucket {index} starts where {} ended",
                index.saturating_sub(1)
            );
            assert!(high >= low);
            assert_eq!(bucket_index(low), index);
            assert_eq!(bucket_index(high), index);
            // Width at most 1/SUB of the lower bound above the exact range.
            if low >= EXACT {
                assert!((high - low + 1) * SUB <= low, "bucket {index} too wide");
            }
            next = high.wrapping_add(1);
        }
        assert_eq!(bucket_bounds(NUM_BUCKETS - 1).1, u64::MAX);
        assert_eq!(NUM_BUCKETS, 496);
    }

    #[test]
    fn values_between_bounds_map_to_their_bucket() {
        for v in [
            16u64,
            17,
            31,
            32,
            33,
            1000,
            1023,
            1024,
            123_456_789,
            u64::MAX / 3,
            u64::MAX - 1,
        ] {
            let (low, high) = bucket_bounds(bucket_index(v));
            assert!(low <= v && v <= high, "{v} not in [{low}, {high}]");
        }
    }
}
