//! Parsing durations written as `10s`, `500ms`, `1m30s`.

use std::time::Duration;

/// Parses a duration such as `10s`, `500ms`, `1.5s`, `1m`, `1m30s`, `2h` (units `ns`, `us`/`µs`,
/// `ms`, `s`, `m`/`min`, `h`; parts add up); a bare number is seconds.
///
/// ```
/// use std::time::Duration;
/// use dynrt_io::demo::parse_duration;
///
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
/// assert!(parse_duration("soon").is_err());
/// ```
///
/// # Errors
/// A message naming the input and what was expected.
pub fn parse_duration(input: &str) -> Result<Duration, String> {
    let text = input.trim();
    let bad = || format!("'{input}' is not a duration (write it as 10s, 500ms, 1m or 1m30s)");
    if text.is_empty() {
        return Err(bad());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds).ok_or_else(bad);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let unit_len = rest[number_len..]
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len() - number_len);
        let number: f64 = rest[..number_len].parse().map_err(|_| bad())?;
        let unit = rest[number_len..number_len + unit_len].trim();
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" | "sec" => 1.0,
            "m" | "min" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += seconds_to_duration(number * scale).ok_or_else(bad)?;
        rest = rest[number_len + unit_len..].trim_start();
    }
    Ok(total)
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_in_every_unit() {
        let cases = [
            ("10s", Duration::from_secs(10)),
            ("500ms", Duration::from_millis(500)),
            ("1m", Duration::from_secs(60)),
            ("1.5s", Duration::from_millis(1500)),
            ("1h", Duration::from_secs(3600)),
            ("250us", Duration::from_micros(250)),
            ("1m 30s", Duration::from_secs(90)),
            (" 3 ", Duration::from_secs(3)),
            ("2min", Duration::from_secs(120)),
        ];
        for (text, want) in cases {
            assert_eq!(parse_duration(text), Ok(want), "{text}");
        }
    }

    #[test]
    fn nonsense_is_an_error_naming_the_input() {
        for text in ["", "s", "10x", "-1s", "ten", "1..2s", "-3"] {
            let err = parse_duration(text).unwrap_err();
            assert!(err.contains(&format!("'{text}'")), "{err}");
        }
    }
}
