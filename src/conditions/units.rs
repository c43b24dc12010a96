//! The units of condition values: durations with fractions (`0.5ms`),
//! percentages (`0.5%`) and rates (`10mbit`). Values are kept as integers
//! (microseconds, millionths of a percent, bits per second) so that sets
//! compare and hash exactly.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A share of packets, in millionths of a percent (100 % is 100 000 000).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Percent(u32);

impl Percent {
    pub const ZERO: Percent = Percent(0);
    pub const HUNDRED: Percent = Percent(100_000_000);

    pub fn from_millionths(millionths_of_percent: u32) -> Percent {
        Percent(millionths_of_percent)
    }

    pub fn millionths(self) -> u32 {
        self.0
    }

    /// As a probability between 0 and 1.
    pub fn probability(self) -> f64 {
        f64::from(self.0) / 100_000_000.0
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", trim_decimal(self.0 as u64, 1_000_000))
    }
}

/// A rate in bits per second.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rate(pub u64);

impl Rate {
    pub fn bits_per_second(self) -> u64 {
        self.0
    }
}

/// In the largest unit that keeps at most three decimals: `10mbit`,
/// `500kbit`, `1.5gbit`.
impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bits = self.0;
        for (unit, size) in [
            ("gbit", 1_000_000_000),
            ("mbit", 1_000_000),
            ("kbit", 1_000),
        ] {
            if bits >= size && (bits * 1000).is_multiple_of(size) {
                return write!(f, "{}{unit}", trim_decimal(bits, size));
            }
        }
        write!(f, "{bits}bit")
    }
}

/// `value / scale` with the decimals it needs and no more.
fn trim_decimal(value: u64, scale: u64) -> String {
    let whole = value / scale;
    let frac = value % scale;
    if frac == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// What is wrong with a value, and how to write it instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitError {
    pub message: String,
    pub help: String,
}

fn err(message: String, help: impl Into<String>) -> UnitError {
    UnitError {
        message,
        help: help.into(),
    }
}

/// Splits `12.5ms` into the number (in units of 10^-`scale_digits`) and the
/// unit. Returns `None` when the text does not start with a number.
fn number_and_unit(text: &str, scale_digits: u32) -> Option<(u128, &str)> {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(end);
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || frac.len() > scale_digits as usize || frac.contains('.') {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u128 = whole.parse().ok()?;
    let mut frac_value: u128 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..scale_digits as usize {
        frac_value *= 10;
    }
    Some((
        whole.checked_mul(10u128.pow(scale_digits))? + frac_value,
        unit.trim(),
    ))
}

/// A condition duration: `0.5ms`, `50ms`, `1s`, `250us`; kept in
/// microseconds. At most a minute: longer is a mistake, not a network.
pub fn parse_duration(key: &str, text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    let Some((value, unit)) = number_and_unit(text, 3) else {
        return Err(err(
            format!("`{key}` has `{text}`, which is not a duration"),
            format!("write a number and a unit: `{key}: 40ms` (us, ms or s; fractions allowed)"),
        ));
    };
    // `value` is in thousandths of the unit.
    let micros_per_thousandth = match unit {
        "us" | "µs" => 0,
        "ms" => 1,
        "s" => 1_000,
        "" => {
            return Err(err(
                format!("`{key}` needs a unit"),
                format!("write `{key}: {text}ms` (us, ms or s)"),
            ));
        }
        other => {
            return Err(err(
                format!("`{other}` in `{key}: {text}` is not a unit of time"),
                format!("use us, ms or s: `{key}: 40ms`"),
            ));
        }
    };
    let micros = if micros_per_thousandth == 0 {
        if value % 1000 != 0 {
            return Err(err(
                format!("`{key}: {text}` is finer than a microsecond"),
                "write whole microseconds, or use ms with a fraction: `0.5ms`",
            ));
        }
        value / 1000
    } else {
        value * micros_per_thousandth
    };
    if micros > 60_000_000 {
        return Err(err(
            format!("`{key}: {text}` is longer than a minute"),
            "conditions add at most 60s; a longer wait is an outage, not a delay",
        ));
    }
    Ok(micros as u64)
}

/// A percentage: `0.5%`, `20%`; at most 100 % and six decimals.
pub fn parse_percent(key: &str, text: &str) -> Result<Percent, UnitError> {
    let text = text.trim();
    let Some((value, unit)) = number_and_unit(text, 6) else {
        return Err(err(
            format!("`{key}` has `{text}`, which is not a percentage"),
            format!("write a number and `%`: `{key}: 0.5%`"),
        ));
    };
    match unit {
        "%" => {}
        "" => {
            return Err(err(
                format!("`{key}` needs a unit: a percentage"),
                format!("write `{key}: {text}%` (a share of packets in percent)"),
            ));
        }
        other => {
            return Err(err(
                format!("`{other}` in `{key}: {text}` is not `%`"),
                format!("write a percentage: `{key}: 0.5%`"),
            ));
        }
    }
    if value > u128::from(Percent::HUNDRED.0) {
        return Err(err(
            format!("`{key}: {text}` is over 100%"),
            format!("a share of packets is between 0% and 100%: `{key}: 100%` at most"),
        ));
    }
    Ok(Percent(value as u32))
}

/// A rate: `500kbit`, `10mbit`, `1gbit`, or `kbps`, `mbps`, `gbps` (bits
/// too, as the format says), or `bit`. At least 8 bits per second.
pub fn parse_rate(key: &str, text: &str) -> Result<Rate, UnitError> {
    let text = text.trim();
    let Some((value, unit)) = number_and_unit(text, 3) else {
        return Err(err(
            format!("`{key}` has `{text}`, which is not a rate"),
            format!("write a number and a unit: `{key}: 10mbit` (bit, kbit, mbit, gbit)"),
        ));
    };
    let bits_per_thousandth: u128 = match unit.to_ascii_lowercase().as_str() {
        "bit" | "bps" => 1,
        "kbit" | "kbps" => 1_000,
        "mbit" | "mbps" => 1_000_000,
        "gbit" | "gbps" => 1_000_000_000,
        "" => {
            return Err(err(
                format!("`{key}` needs a unit"),
                format!("write `{key}: {text}mbit` (bit, kbit, mbit or gbit)"),
            ));
        }
        other => {
            return Err(err(
                format!("`{other}` in `{key}: {text}` is not a unit of rate"),
                format!("use bit, kbit, mbit or gbit: `{key}: 10mbit`"),
            ));
        }
    };
    let bits = value * bits_per_thousandth / 1000;
    if bits < 8 {
        return Err(err(
            format!("`{key}: {text}` is less than 8 bit per second"),
            "leave `rate` out for no limit, or give a rate of at least 8bit",
        ));
    }
    if bits > 100_000_000_000 {
        return Err(err(
            format!("`{key}: {text}` is over 100gbit"),
            "leave `rate` out for no limit",
        ));
    }
    Ok(Rate(bits as u64))
}

/// `1500` → `1.5ms`, `250` → `0.25ms`, `2000000` → `2000ms`.
pub fn format_micros(micros: u64) -> String {
    format!("{}ms", trim_decimal(micros, 1000))
}

impl Serialize for Percent {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_percent("value", &text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

impl Serialize for Rate {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_rate("value", &text).map_err(|e| serde::de::Error::custom(e.message))
    }
}

/// Optional microseconds, written as `1.5ms` in JSON and in the record.
pub mod micros {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(m) => s.serialize_str(&super::format_micros(*m)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| {
            super::parse_duration("value", &t).map_err(|e| serde::de::Error::custom(e.message))
        })
        .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_fractions_and_units() {
        assert_eq!(parse_duration("delay", "0.5ms"), Ok(500));
        assert_eq!(parse_duration("delay", "50ms"), Ok(50_000));
        assert_eq!(parse_duration("delay", "1s"), Ok(1_000_000));
        assert_eq!(parse_duration("delay", "1.25s"), Ok(1_250_000));
        assert_eq!(parse_duration("delay", "250us"), Ok(250));
        assert_eq!(parse_duration("delay", "0.05ms"), Ok(50));
        let bare = parse_duration("delay", "40").unwrap_err();
        assert_eq!(bare.help, "write `delay: 40ms` (us, ms or s)");
        assert!(parse_duration("delay", "2m").is_err());
        assert!(parse_duration("delay", "61s").is_err());
        assert!(parse_duration("delay", "fast").is_err());
    }

    #[test]
    fn percentages_need_their_sign_and_stay_under_100() {
        assert_eq!(parse_percent("loss", "0.5%"), Ok(Percent(500_000)));
        assert_eq!(parse_percent("loss", "100%"), Ok(Percent::HUNDRED));
        assert_eq!(parse_percent("loss", "0.01%").unwrap().to_string(), "0.01%");
        let bare = parse_percent("loss", "20").unwrap_err();
        assert_eq!(bare.message, "`loss` needs a unit: a percentage");
        assert_eq!(
            bare.help,
            "write `loss: 20%` (a share of packets in percent)"
        );
        let over = parse_percent("loss", "150%").unwrap_err();
        assert_eq!(over.message, "`loss: 150%` is over 100%");
    }

    #[test]
    fn rates_are_bits_whatever_the_spelling() {
        assert_eq!(parse_rate("rate", "10mbit"), Ok(Rate(10_000_000)));
        assert_eq!(parse_rate("rate", "10mbps"), Ok(Rate(10_000_000)));
        assert_eq!(parse_rate("rate", "500kbit"), Ok(Rate(500_000)));
        assert_eq!(parse_rate("rate", "1.5gbit"), Ok(Rate(1_500_000_000)));
        assert_eq!(
            parse_rate("rate", "1.5gbit").unwrap().to_string(),
            "1.5gbit"
        );
        assert_eq!(Rate(500_000).to_string(), "500kbit");
        assert_eq!(Rate(1234).to_string(), "1.234kbit");
        assert_eq!(Rate(12).to_string(), "12bit");
        let bare = parse_rate("rate", "2").unwrap_err();
        assert_eq!(bare.help, "write `rate: 2mbit` (bit, kbit, mbit or gbit)");
        assert!(parse_rate("rate", "0mbit").is_err());
        assert!(parse_rate("rate", "10 furlongs").is_err());
    }

    #[test]
    fn micros_print_as_milliseconds() {
        assert_eq!(format_micros(1500), "1.5ms");
        assert_eq!(format_micros(250), "0.25ms");
        assert_eq!(format_micros(2_000_000), "2000ms");
    }
}
