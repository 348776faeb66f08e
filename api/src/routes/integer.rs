//! Integer fields of JSON bodies. JSON has one number type, and JSON Schema
//! counts `5.0` as the integer 5; serde would refuse it for an integer field, so
//! these accept any number without a fractional part that fits the field.

use serde::de::{Deserialize, Deserializer, Error};

fn from_number<'de, D, T>(number: serde_json::Number) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    let out_of_range = || D::Error::custom(format!("{number} is out of range for this field"));
    if let Some(n) = number.as_u64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    if let Some(n) = number.as_i64() {
        return T::try_from(n).map_err(|_| out_of_range());
    }
    match number.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => {
            // Exact: integral and below 2^53.
            #[allow(clippy::cast_possible_truncation)]
            let n = f as i64;
            T::try_from(n).map_err(|_| out_of_range())
        }
        _ => Err(D::Error::custom(format!("{number} is not an integer"))),
    }
}

/// `#[serde(deserialize_with = "integer::exact")]`
pub fn exact<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    from_number::<D, T>(serde_json::Number::deserialize(deserializer)?)
}

/// `#[serde(default, deserialize_with = "integer::optional")]`: absent or `null` is `None`.
pub fn optional<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    Option::<serde_json::Number>::deserialize(deserializer)?
        .map(from_number::<D, T>)
        .transpose()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    #[derive(Deserialize)]
    struct Body {
        #[serde(deserialize_with = "super::exact")]
        small: u8,
        #[serde(deserialize_with = "super::exact")]
        seq: i64,
        #[serde(default, deserialize_with = "super::optional")]
        days: Option<u32>,
    }

    fn parse(json: &str) -> Result<Body, serde_json::Error> {
        serde_json::from_str(json)
    }

    #[test]
    fn integral_numbers_are_accepted_in_any_spelling() {
        let body = parse(r#"{"small": 3.0, "seq": -9778.0, "days": 1e2}"#).expect("integral");
        assert_eq!((body.small, body.seq, body.days), (3, -9778, Some(100)));
        let body = parse(r#"{"small": 0, "seq": 9007199254740993}"#).expect("integers");
        assert_eq!(
            (body.small, body.seq, body.days),
            (0, 9_007_199_254_740_993, None)
        );
        assert_eq!(
            parse(r#"{"small": 1, "seq": 1, "days": null}"#)
                .expect("null")
                .days,
            None
        );
    }

    #[test]
    fn fractions_and_overflow_are_refused() {
        assert!(parse(r#"{"small": 1.5, "seq": 1}"#).is_err());
        assert!(parse(r#"{"small": 256, "seq": 1}"#).is_err());
        assert!(parse(r#"{"small": -1, "seq": 1}"#).is_err());
        assert!(parse(r#"{"small": 1, "seq": 1, "days": -1.0}"#).is_err());
        assert!(parse(r#"{"small": 1, "seq": 1e300}"#).is_err());
        assert!(parse(r#"{"small": "1", "seq": 1}"#).is_err());
    }
}
