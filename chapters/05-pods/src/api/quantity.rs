//! Kubernetes quantities: `500m` of CPU, `64Mi` of memory.
//!
//! A quantity is a decimal number with an optional suffix:
//!
//! ```text
//! binary (powers of 2):     Ki Mi Gi Ti Pi Ei          64Mi  = 67108864
//! decimal (powers of 10):   n u m "" k M G T P E       500m  = 0.5,  1G = 1000000000
//! an exponent:              e3, E-2                    129e6 = 129000000
//! ```
//!
//! CPU is counted in *millicores* (`1` = `1000m` = one core) and memory in bytes. A
//! value is kept as the text the user wrote, so a manifest serialises back unchanged;
//! [`Quantity::millis`] and [`Quantity::value`] parse it when asked, rounding up as
//! Kubernetes does (`0.1m` of CPU is `1m`, `0.5` bytes is 1 byte).
//!
//! What Kubernetes does differently: `resource.Quantity` also stores a canonical form and
//! serialises that (`1000m` comes back as `1`, `1.5Gi` as `1536Mi`); we keep the user's text.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A quantity as written in a manifest (`"500m"`, `"64Mi"`, `1`, `129e6`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Quantity(pub String);

/// What Kubernetes says about a quantity it cannot parse (its own wording), plus examples.
pub const QUANTITY_FORMAT: &str = "quantities must match the regular expression \
     '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$' (for example 500m or 2 for CPU, 64Mi or 1G for memory)";

/// A parsed quantity: `digits × 10^exp10 × 2^exp2`, exactly (no floating point, so
/// `0.1` is really a tenth and `1Ei` does not lose bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Exact {
    digits: i128,
    exp10: i32,
    exp2: u32,
}

fn parse_exact(text: &str) -> Option<Exact> {
    let text = text.trim();
    // The number: an optional sign, digits and at most one decimal point.
    let number_len =
        text.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-')).unwrap_or(text.len());
    let (number, suffix) = text.split_at(number_len);
    let (negative, number) = match number.as_bytes().first()? {
        b'-' => (true, &number[1..]),
        b'+' => (false, &number[1..]),
        _ => (false, number),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() || !(whole.bytes().chain(fraction.bytes()).all(|b| b.is_ascii_digit())) {
        return None;
    }
    let mut digits: i128 = 0;
    for b in whole.bytes().chain(fraction.bytes()) {
        digits = digits.checked_mul(10)?.checked_add(i128::from(b - b'0'))?;
    }
    let mut exp10 = -i32::try_from(fraction.len()).ok()?;
    let mut exp2 = 0;
    match suffix {
        "" => {}
        "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
            exp2 = 10 * (1 + "KMGTPE".find(&suffix[..1])? as u32);
        }
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        _ => {
            // A decimal exponent: e3, E-2, e+6.
            let exponent = suffix.strip_prefix(['e', 'E'])?;
            let exponent = exponent.strip_prefix('+').unwrap_or(exponent);
            if exponent.is_empty() || exponent.starts_with("+") {
                return None;
            }
            exp10 += exponent.parse::<i32>().ok().filter(|e| e.abs() <= 60)?;
        }
    }
    Some(Exact { digits: if negative { -digits } else { digits }, exp10, exp2 })
}

impl Exact {
    /// `self × 10^scale`, rounded up to a whole number (towards +∞, as Kubernetes' `ScaledValue`).
    fn scaled(self, scale: i32) -> Option<i64> {
        let mut n = self.digits.checked_mul(1i128.checked_shl(self.exp2)?)?;
        let exp = self.exp10 + scale;
        if exp >= 0 {
            n = n.checked_mul(10i128.checked_pow(exp as u32)?)?;
        } else {
            let divisor = 10i128.checked_pow(exp.unsigned_abs()).unwrap_or(i128::MAX);
            n = n.div_euclid(divisor) + i128::from(n.rem_euclid(divisor) != 0);
        }
        i64::try_from(n).ok()
    }
}

impl Quantity {
    /// A quantity from its text.
    pub fn new(text: impl Into<String>) -> Quantity {
        Quantity(text.into())
    }

    /// The value in thousandths, rounded up: CPU in millicores (`"500m"` → 500, `"1"` → 1000).
    /// `None` if the text is not a quantity or does not fit in an `i64`.
    pub fn millis(&self) -> Option<i64> {
        parse_exact(&self.0)?.scaled(3)
    }

    /// The value as a whole number, rounded up: memory in bytes (`"64Mi"` → 67108864,
    /// `"129e6"` → 129000000). `None` if the text is not a quantity or is too large.
    pub fn value(&self) -> Option<i64> {
        parse_exact(&self.0)?.scaled(0)
    }

    /// Whether the text is a quantity at all.
    pub fn is_valid(&self) -> bool {
        parse_exact(&self.0).is_some_and(|q| q.scaled(-18).is_some())
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// A quantity may be written as a string (`"500m"`) or, in YAML, as a bare number
/// (`cpu: 1`, `memory: 128974848`): both are accepted, as by Kubernetes.
impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Quantity, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity such as \"500m\", \"64Mi\" or 2")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity::new(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity::new(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity::new(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Quantity, E> {
                Ok(Quantity::new(v.to_string()))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Fractions are exact and round up, as Kubernetes' MilliValue and Value do.
    #[test]
    fn fractions_round_up() {
        assert_eq!(Quantity::new("0.1m").millis(), Some(1));
        assert_eq!(Quantity::new("0.5").value(), Some(1));
        assert_eq!(Quantity::new("-0.5").value(), Some(0));
        assert_eq!(Quantity::new("1.5Gi").value(), Some(1_610_612_736));
    }

    // Text that is not a quantity is refused, not read as a prefix.
    #[test]
    fn garbage_is_refused() {
        for bad in [
            "",
            "m",
            "1.2.3",
            "64MB",
            "1Kb",
            "e3",
            "1e",
            "1e+",
            "12 Mi",
            "1ki",
            "--1",
            "9999999999999999999999999999999999999999",
        ] {
            assert!(!Quantity::new(bad).is_valid(), "{bad:?} should be invalid");
        }
    }
}
