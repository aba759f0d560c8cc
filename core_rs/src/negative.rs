//! Does an OCPP-J frame hold a negative value at all? A byte scan the gateway runs before it
//! parses a meter reading's payload to flag it (reliability.md §5.3 M30): a `false` is certain,
//! so a normal frame is never parsed for the check.

/// `true` when some `-` starts a JSON number (`:-1`, `[-1`, `, -1`) or a string (`"-1"`, how
/// 1.6 writes meter values). Only `-` bytes are visited (memchr); each looks back past JSON
/// whitespace to the byte before it. A `-` inside a string can give a false `true` (`"a:-b"`),
/// never a false `false`: in JSON a value starting with `-` follows `:`, `[`, `,` or its
/// opening quote. Dates, UUIDs and identifiers (`2026-11-22`, `a-b`) follow a letter or digit.
pub fn may_hold_negative(frame: &[u8]) -> bool {
    memchr::memchr_iter(b'-', frame).any(|at| {
        frame
            .get(..at)
            .unwrap_or_default()
            .iter()
            .rev()
            .find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'))
            .is_some_and(|b| matches!(b, b':' | b'[' | b',' | b'"'))
    })
}

#[cfg(test)]
mod tests {
    use super::may_hold_negative;

    #[test]
    fn negative_numbers_and_strings_are_seen() {
        for frame in [
            &br#"[2,"a","MeterValues",{"v":-1}]"#[..],
            br#"[2,"a","MeterValues",{"v": -1}]"#,
            br#"[2,"a","MeterValues",{"v":	
 -1.5}]"#,
            br#"[2,"a","MeterValues",{"v":"-12.5"}]"#,
            br#"[2,"a","MeterValues",{"v":[1, -2]}]"#,
            br#"[2,"a","MeterValues",{"v":[-2]}]"#,
        ] {
            assert!(
                may_hold_negative(frame),
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }

    #[test]
    fn dates_ids_and_positive_values_are_not() {
        for frame in [
            &br#"[2,"6f1c-4a2b","MeterValues",{"t":"2026-11-22T04:00:00Z","v":"12.5"}]"#[..],
            br#"[2,"a","Heartbeat",{}]"#,
            b"",
            b"-",
            br#"[2,"a","X",{"tag":"AB-CD","x":1e-5}]"#,
        ] {
            assert!(
                !may_hold_negative(frame),
                "{}",
                String::from_utf8_lossy(frame)
            );
        }
    }
}
