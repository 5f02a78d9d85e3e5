//! Payment cards: the checks a card must pass to be charged.

use knactor::serde_json::Value;

/// A month as (year, month), e.g. (2026, 11).
pub type Month = (u32, u32);

/// The current month (UTC).
pub fn this_month() -> Month {
    let now = humantime::format_rfc3339(std::time::SystemTime::now()).to_string();
    let year = now[..4].parse().unwrap_or(1970);
    let month = now[5..7].parse().unwrap_or(1);
    (year, month)
}

/// Whether the digits of `number` (spaces allowed) pass the Luhn checksum.
pub fn luhn(number: &str) -> bool {
    let digits: Option<Vec<u32>> =
        number.chars().filter(|c| *c != ' ').map(|c| c.to_digit(10)).collect();
    let Some(digits) = digits.filter(|d| (12..=19).contains(&d.len())) else { return false };
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(
            |(i, &d)| {
                if !i.is_multiple_of(2) { if d * 2 > 9 { d * 2 - 9 } else { d * 2 } } else { d }
            },
        )
        .sum();
    sum.is_multiple_of(10)
}

/// Parses an `MM/YY` expiry.
fn expiry(text: &str) -> Option<Month> {
    let (month, year) = text.split_once('/')?;
    let (month, year): (u32, u32) = (month.trim().parse().ok()?, year.trim().parse().ok()?);
    ((1..=12).contains(&month) && year < 100).then_some((2000 + year, month))
}

/// Checks `card` (`{number, expiry: "MM/YY"}`) in `today`'s month; the reason it is refused.
pub fn check(card: &Value, today: Month) -> Result<(), String> {
    let number = card["number"].as_str().ok_or("no card number")?;
    if !luhn(number) {
        return Err("invalid card number".into());
    }
    let expires = card["expiry"].as_str().and_then(expiry).ok_or("invalid expiry date")?;
    if expires < today {
        return Err(format!("card expired {:02}/{}", expires.1, expires.0));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use knactor::serde_json::json;

    #[test]
    fn valid_cards_pass_and_bad_ones_say_why() {
        let today = (2026, 11);
        let card = |number: &str, expiry: &str| json!({"number": number, "expiry": expiry});
        assert_eq!(check(&card("4242 4242 4242 4242", "11/26"), today), Ok(()));
        assert_eq!(check(&card("4111111111111111", "01/30"), today), Ok(()));
        assert_eq!(
            check(&card("4242 4242 4242 4241", "11/30"), today),
            Err("invalid card number".into())
        );
        assert_eq!(
            check(&card("4242424242424242", "10/26"), today),
            Err("card expired 10/2026".into())
        );
        assert_eq!(
            check(&card("4242424242424242", "13/26"), today),
            Err("invalid expiry date".into())
        );
        assert_eq!(check(&json!({}), today), Err("no card number".into()));
        assert!(!luhn("42"), "too short");
    }
}
