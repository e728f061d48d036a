//! Phone numbers, parsed once at the edge into E.164.

use std::fmt;

use serde::{Serialize, Serializer};

/// A plausible international phone number in E.164 form (`+` and 8 to 15 digits, with a
/// country calling code that exists). Whether the number is on WhatsApp is for the engine to
/// find out; this type only rules out what can never be a number.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Phone(String);

/// Why a text is not a phone number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Letters or symbols other than spaces, dashes, dots, parentheses and a leading `+`.
    #[error("must contain only digits, spaces, dashes, dots, parentheses and a leading '+'")]
    InvalidCharacters,
    /// Too few or too many digits.
    #[error("must have between 8 and 15 digits including the country code (got {0})")]
    Length(usize),
    /// No country uses the leading digits as its calling code.
    #[error("does not start with a known country calling code")]
    UnknownCountryCode,
}

impl Phone {
    /// Parses a phone number written in any common international format: `+1 (555) 123-4567`,
    /// `0044 20 7946 0958`, `15551234567`. A number without `+` or `00` is read as already
    /// starting with its country code, as WhatsApp numbers are.
    pub fn parse(input: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        let rest = trimmed.strip_prefix('+').unwrap_or(trimmed);
        let mut digits = String::with_capacity(rest.len());
        for c in rest.chars() {
            match c {
                '0'..='9' => digits.push(c),
                ' ' | '-' | '.' | '(' | ')' | '\u{a0}' => {}
                _ => return Err(PhoneError::InvalidCharacters),
            }
        }
        if !trimmed.starts_with('+')
            && let Some(stripped) = digits.strip_prefix("00")
        {
            digits = stripped.to_owned();
        }
        if !(8..=15).contains(&digits.len()) {
            return Err(PhoneError::Length(digits.len()));
        }
        if !has_known_country_code(&digits) {
            return Err(PhoneError::UnknownCountryCode);
        }
        Ok(Self(format!("+{digits}")))
    }

    /// `+` followed by the digits.
    pub fn e164(&self) -> &str {
        &self.0
    }

    /// The digits alone, as WhatsApp JIDs and wa.me links use them.
    pub fn digits(&self) -> &str {
        &self.0[1..]
    }
}

fn has_known_country_code(digits: &str) -> bool {
    let db = &*phonenumber::metadata::DATABASE;
    (1..=3).any(|len| {
        digits
            .get(..len)
            .and_then(|code| code.parse::<u16>().ok())
            .is_some_and(|code| db.by_code(&code).is_some())
    })
}

impl fmt::Display for Phone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Phone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_common_formats() {
        for input in [
            "+1 (555) 123-4567",
            "15551234567",
            "+1.555.123.4567",
            "0015551234567",
        ] {
            assert_eq!(
                Phone::parse(input).unwrap().e164(),
                "+15551234567",
                "{input}"
            );
        }
        assert_eq!(
            Phone::parse("+44 20 7946 0958").unwrap().digits(),
            "442079460958"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(Phone::parse("hello"), Err(PhoneError::InvalidCharacters));
        assert_eq!(Phone::parse("+1 555"), Err(PhoneError::Length(4)));
        assert_eq!(
            Phone::parse("1234567890123456"),
            Err(PhoneError::Length(16))
        );
        // 999 is not assigned to any country; neither are 99 or 9 on their own... 9 is not a code.
        assert_eq!(
            Phone::parse("+999 1234 5678"),
            Err(PhoneError::UnknownCountryCode)
        );
    }
}
