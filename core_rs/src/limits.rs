//! Bounds on untrusted input, checked before any allocation that depends on the input.

/// Limits applied to every inbound frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame accepted, in bytes. OCA data: 99 % of messages fit in 2 kB (Part 4 §5.2).
    pub max_frame_bytes: usize,
    /// Deepest nesting of arrays and objects, counting the frame array itself.
    pub max_depth: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_frame_bytes: 64 * 1024,
            max_depth: 32,
        }
    }
}

/// Whether `bytes` nests arrays/objects deeper than `limit`.
///
/// One pass, no allocation, constant work per byte; strings are skipped so brackets inside
/// them do not count. Runs before the JSON parser so that a hostile frame (100,000 `[` in
/// 64 KiB) is refused in microseconds without building anything.
#[must_use]
pub fn nesting_exceeds(bytes: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_nesting_outside_strings_only() {
        assert!(!nesting_exceeds(br#"[2,"a",{"b":[1]}]"#, 3));
        assert!(nesting_exceeds(br#"[2,"a",{"b":[1]}]"#, 2));
        assert!(!nesting_exceeds(br#"[2,"[[[[\"[[[[",{}]"#, 2));
    }

    #[test]
    fn hostile_depth_is_refused() {
        let deep = vec![b'['; 100_000];
        assert!(nesting_exceeds(&deep, 32));
    }
}
