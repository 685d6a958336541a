//! Durations in the configuration: a whole number and a unit (`30s`,
//! `15m`, `1h`, `7d`).

/// Parses `30s`, `15m`, `1h`, `7d` into milliseconds.
pub fn parse_duration_ms(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("{text:?} has no unit: use s, m, h or d (like 15m)"))?;
    let (num, unit) = text.split_at(split);
    let n: i64 = num
        .parse()
        .map_err(|_| format!("{text:?} does not start with a number (like 15m)"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => {
            return Err(format!(
                "{text:?} has unknown unit {unit:?}: use s, m, h or d"
            ));
        }
    };
    if n <= 0 || n > 100_000 {
        return Err(format!("{text:?} must be between 1 and 100000 {unit}"));
    }
    Ok(n * unit_ms)
}
