//! Durations as people type them (`300us`, `1.5ms`, `5s`, `2m`): the one
//! parser every command and scenario file uses, so one spelling means the
//! same thing everywhere.

/// What a number without a unit means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BareNumber {
    /// `800` is 800 ns (engine thresholds, where ns is the natural unit).
    Nanoseconds,
    /// `2` is 2 s (intervals of long-running daemons).
    Seconds,
    /// A unit is required (scenario files, where `5` is ambiguous).
    Reject,
}

/// Parses a non-negative duration into nanoseconds. Units: `ns`, `us`/`µs`,
/// `ms`, `s`, `m`/`min`; fractions allowed (`1.5ms`).
///
/// Errors (as text naming the input): not a number, a unit that is missing
/// (with [`BareNumber::Reject`]) or unknown, a negative value, or more than
/// about 31 years.
pub fn parse_duration_ns(s: &str, bare: BareNumber) -> Result<u64, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("duration `{s}`: `{num}` is not a number"))?;
    let mult = match unit.trim() {
        "" => match bare {
            BareNumber::Nanoseconds => 1.0,
            BareNumber::Seconds => 1e9,
            BareNumber::Reject => {
                return Err(format!(
                    "duration `{s}` needs a unit: ns, us, ms, s or m (e.g. `5s`)"
                ))
            }
        },
        "ns" => 1.0,
        "us" | "µs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" | "min" => 60e9,
        u => {
            return Err(format!(
                "duration `{s}`: unknown unit `{u}` (ns, us, ms, s, m)"
            ))
        }
    };
    let ns = v * mult;
    if !ns.is_finite() || ns < 0.0 {
        return Err(format!("duration `{s}` must be a non-negative number"));
    }
    if ns > 1e18 {
        return Err(format!("duration `{s}` is out of range"));
    }
    Ok(ns.round() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_bare_numbers() {
        let p = |s| parse_duration_ns(s, BareNumber::Reject);
        assert_eq!(p("800ns"), Ok(800));
        assert_eq!(p("300us"), Ok(300_000));
        assert_eq!(p("300µs"), Ok(300_000));
        assert_eq!(p("1.5ms"), Ok(1_500_000));
        assert_eq!(p(" 5s "), Ok(5_000_000_000));
        assert_eq!(p("2m"), Ok(120_000_000_000));
        assert!(p("5").unwrap_err().contains("needs a unit"));
        assert!(p("5h").unwrap_err().contains("unknown unit"));
        assert!(p("x s").unwrap_err().contains("not a number"));
        assert!(p("-1ms").unwrap_err().contains("non-negative"));
        assert!(p("1e30s").is_err());
        assert_eq!(parse_duration_ns("800", BareNumber::Nanoseconds), Ok(800));
        assert_eq!(
            parse_duration_ns("2", BareNumber::Seconds),
            Ok(2_000_000_000)
        );
    }
}
