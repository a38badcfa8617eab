//! Kubernetes quantities: CPU in millicores and bytes, parsed and printed as Kubernetes does.

use super::*;

// ---------------------------------------------------------------- quantities

/// A resource quantity as written (`500m`, `2`, `128Mi`, `1G`, `1e3`).
/// Numbers in YAML (`cpu: 1`, `cpu: 0.5`) are taken and kept as strings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(pub String);

impl Quantity {
    /// The quantity as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The quantity as CPU millicores (rounded up).
    pub fn cpu_millis(&self) -> Result<u64, QuantityError> {
        parse_cpu_millis(&self.0)
    }

    /// The quantity as bytes (rounded up).
    pub fn memory_bytes(&self) -> Result<u64, QuantityError> {
        parse_memory_bytes(&self.0)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a quantity (a string such as \"500m\" or \"128Mi\", or a number)")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                if v.is_finite() {
                    Ok(Quantity(v.to_string()))
                } else {
                    Err(E::invalid_value(de::Unexpected::Float(v), &self))
                }
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Ok(Quantity(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// Why a quantity did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuantityError {
    /// Not Kubernetes' quantity syntax.
    #[error(
        "invalid quantity {0:?}: expected a number with an optional suffix (m, k, M, G, T, P, E, Ki, Mi, Gi, Ti, Pi, Ei or e<exponent>), such as 500m, 2, 128Mi or 1G"
    )]
    Syntax(String),
    /// Below zero.
    #[error("invalid quantity {0:?}: must not be negative")]
    Negative(String),
    /// Does not fit in 64 bits once converted.
    #[error("invalid quantity {0:?}: too large")]
    TooLarge(String),
}

/// Parses a CPU quantity into millicores, rounding up: `500m` → 500, `1` → 1000, `0.5` → 500.
pub fn parse_cpu_millis(s: &str) -> Result<u64, QuantityError> {
    parse_quantity_scaled(s, 3)
}

/// Parses a memory quantity into bytes, rounding up: `128Mi`, `1G`, `1e3`, `512`.
pub fn parse_memory_bytes(s: &str) -> Result<u64, QuantityError> {
    parse_quantity_scaled(s, 0)
}

/// Parses a quantity into billionths, rounding up as Kubernetes rounds
/// every quantity to nano precision: whether a count is whole is read here.
pub fn parse_nanos(s: &str) -> Result<u64, QuantityError> {
    parse_quantity_scaled(s, 9)
}

/// Parses a quantity and returns `value * 10^extra_exp10`, rounded up.
pub(super) fn parse_quantity_scaled(s: &str, extra_exp10: i32) -> Result<u64, QuantityError> {
    let syntax = || QuantityError::Syntax(s.to_string());
    let too_large = || QuantityError::TooLarge(s.to_string());

    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let num_len = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    let (number, suffix) = rest.split_at(num_len);
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(syntax());
    }

    // value = mantissa * 10^exp10 * 2^exp2
    let mut exp10: i64 = -(frac_part.len() as i64);
    let mut exp2: u32 = 0;
    match suffix {
        "" => {}
        "n" => exp10 -= 9,
        "u" => exp10 -= 6,
        "m" => exp10 -= 3,
        "k" => exp10 += 3,
        "M" => exp10 += 6,
        "G" => exp10 += 9,
        "T" => exp10 += 12,
        "P" => exp10 += 15,
        "E" => exp10 += 18,
        "Ki" => exp2 = 10,
        "Mi" => exp2 = 20,
        "Gi" => exp2 = 30,
        "Ti" => exp2 = 40,
        "Pi" => exp2 = 50,
        "Ei" => exp2 = 60,
        _ => {
            let e = suffix
                .strip_prefix('e')
                .or_else(|| suffix.strip_prefix('E'))
                .ok_or_else(syntax)?;
            let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return Err(syntax());
            }
            let n: i64 = e.parse().map_err(|_| too_large())?;
            exp10 = exp10.checked_add(n).ok_or_else(too_large)?;
        }
    }
    exp10 += i64::from(extra_exp10);

    let mut mantissa: u128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        mantissa = mantissa
            .checked_mul(10)
            .and_then(|m| m.checked_add(u128::from(b - b'0')))
            .ok_or_else(too_large)?;
    }
    if mantissa == 0 {
        return Ok(0);
    }
    if negative {
        return Err(QuantityError::Negative(s.to_string()));
    }
    let scaled = mantissa.checked_shl(exp2).filter(|v| v >> exp2 == mantissa);
    let mut value = scaled.ok_or_else(too_large)?;
    if exp10 >= 0 {
        for _ in 0..exp10 {
            value = value.checked_mul(10).ok_or_else(too_large)?;
            if value > u128::from(u64::MAX) {
                return Err(too_large());
            }
        }
    } else {
        let mut div: u128 = 1;
        for _ in 0..(-exp10) {
            match div.checked_mul(10) {
                Some(d) => div = d,
                // Dividing a positive value by more than 10^38 rounds up to 1.
                None => return Ok(1),
            }
        }
        value = value.div_ceil(div);
    }
    u64::try_from(value).map_err(|_| too_large())
}
