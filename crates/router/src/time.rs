//! Wall-clock building blocks: weekday sets, `HH:MM-HH:MM` ranges, shift strings, Easter and the
//! Italian national holidays.
//!
//! Every time here is local wall time in the service's zone, in minutes after local midnight.
//! A range whose end is not after its start crosses midnight (`22:00-06:00` ends at 06:00 the next
//! day), so its end is stored as more than 1440.

use jiff::civil::{Date, Weekday};

/// Minutes in a day.
pub(crate) const DAY_MINUTES: u16 = 1440;

/// English three-letter day names, Monday first (index = `Weekday::to_monday_zero_offset`).
pub(crate) const DAY_NAMES: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// Monday = 0 … Sunday = 6.
pub(crate) fn day_idx(weekday: Weekday) -> usize {
    // to_monday_zero_offset is always 0..=6.
    weekday.to_monday_zero_offset() as usize
}

/// A parse problem: a message and an optional hint.
pub(crate) type ParseError = (String, Option<String>);

/// A local time range in minutes after midnight; `end` is above 1440 when it crosses midnight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct MinuteRange {
    pub(crate) start: u16,
    pub(crate) end: u16,
}

impl MinuteRange {
    pub(crate) fn contains(self, minute: u16) -> bool {
        self.start <= minute && minute < self.end
    }
}

/// Parses `HH:MM` (00:00 to 24:00).
pub(crate) fn parse_hhmm(text: &str) -> Option<u16> {
    let (h, m) = text.trim().split_once(':')?;
    if h.is_empty() || h.len() > 2 || m.len() != 2 {
        return None;
    }
    let h: u16 = h.parse().ok()?;
    let m: u16 = m.parse().ok()?;
    if m >= 60 || h > 24 || (h == 24 && m != 0) {
        return None;
    }
    Some(h * 60 + m)
}

/// Formats minutes after midnight as `HH:MM` (`24:00` and beyond roll to the next day's reading).
pub(crate) fn fmt_hhmm(minutes: u16) -> String {
    let minutes = if minutes > DAY_MINUTES {
        minutes - DAY_MINUTES
    } else {
        minutes
    };
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

/// Parses `HH:MM-HH:MM`; an end not after the start crosses midnight.
pub(crate) fn parse_range(text: &str) -> Result<MinuteRange, ParseError> {
    let hint = || {
        Some(
            "write times as HH:MM-HH:MM, e.g. 09:00-13:30 or 22:00-06:00 (crosses midnight)"
                .to_owned(),
        )
    };
    let Some((a, b)) = text.split_once('-') else {
        return Err((format!("`{text}` is not a time range"), hint()));
    };
    let (Some(start), Some(end)) = (parse_hhmm(a), parse_hhmm(b)) else {
        return Err((format!("`{text}` is not a time range"), hint()));
    };
    if start == DAY_MINUTES {
        return Err((
            format!("`{text}` starts at 24:00"),
            Some("start at 00:00 of the next day".to_owned()),
        ));
    }
    if start == end {
        return Err((
            format!("empty time range `{text}`: it starts and ends at the same time"),
            Some("for a whole day write 00:00-24:00".to_owned()),
        ));
    }
    let end = if end <= start { end + DAY_MINUTES } else { end };
    Ok(MinuteRange { start, end })
}

fn parse_day(text: &str) -> Option<usize> {
    let text = text.trim();
    let names = [
        ["mon", "monday", "lun"],
        ["tue", "tuesday", "mar"],
        ["wed", "wednesday", "mer"],
        ["thu", "thursday", "gio"],
        ["fri", "friday", "ven"],
        ["sat", "saturday", "sab"],
        ["sun", "sunday", "dom"],
    ];
    names
        .iter()
        .position(|aliases| aliases.iter().any(|a| a.eq_ignore_ascii_case(text)))
}

/// Parses a weekday set: `Mon-Fri`, `Sat,Sun`, `Mon,Wed-Fri`, `daily`. Bit 0 is Monday.
pub(crate) fn parse_days(text: &str) -> Result<u8, ParseError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("daily") || trimmed.eq_ignore_ascii_case("every-day") {
        return Ok(0x7f);
    }
    let mut mask = 0u8;
    for item in text.split(',') {
        let bad = || {
            (
                format!("`{}` is not a day or a day range", item.trim()),
                Some("use Mon, Tue, Wed, Thu, Fri, Sat, Sun, ranges like Mon-Fri, lists like Sat,Sun, or `daily`".to_owned()),
            )
        };
        match item.split_once('-') {
            Some((a, b)) => {
                let (Some(a), Some(b)) = (parse_day(a), parse_day(b)) else {
                    return Err(bad());
                };
                if b < a {
                    return Err((
                        format!("inverted day range `{}`", item.trim()),
                        Some(format!(
                            "weeks start on Monday: write `{},{}`",
                            if a == 6 {
                                "Sun".to_owned()
                            } else {
                                format!("{}-Sun", DAY_NAMES[a])
                            },
                            if b == 0 {
                                "Mon".to_owned()
                            } else {
                                format!("Mon-{}", DAY_NAMES[b])
                            }
                        )),
                    ));
                }
                for day in a..=b {
                    mask |= 1 << day;
                }
            }
            None => {
                let Some(day) = parse_day(item) else {
                    return Err(bad());
                };
                mask |= 1 << day;
            }
        }
    }
    Ok(mask)
}

#[cfg(test)]
/// Formats a weekday mask compactly (`Mon-Fri`, `daily`, `Mon,Wed`).
pub(crate) fn fmt_days(mask: u8) -> String {
    if mask == 0x7f {
        return "daily".to_owned();
    }
    let mut parts = Vec::new();
    let mut day = 0;
    while day < 7 {
        if mask & (1 << day) != 0 {
            let start = day;
            while day + 1 < 7 && mask & (1 << (day + 1)) != 0 {
                day += 1;
            }
            parts.push(if start == day {
                DAY_NAMES[start].to_owned()
            } else {
                format!("{}-{}", DAY_NAMES[start], DAY_NAMES[day])
            });
        }
        day += 1;
    }
    parts.join(",")
}

/// Parses exactly `YYYY-MM-DD` (a real date). Hand-written: shift tables hold thousands of dates.
pub(crate) fn parse_date(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<i16> {
        b[range].iter().try_fold(0i16, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + i16::from(c - b'0'))
        })
    };
    let (year, month, day) = (number(0..4)?, number(5..7)?, number(8..10)?);
    Date::new(year, i8::try_from(month).ok()?, i8::try_from(day).ok()?).ok()
}

/// Parses `YYYY-MM-DD` or `YYYY-MM-DD..YYYY-MM-DD` into an inclusive date range.
pub(crate) fn parse_date_range(text: &str) -> Result<(Date, Date), ParseError> {
    let parse = |s: &str| -> Result<Date, ParseError> {
        parse_date(s.trim()).ok_or_else(|| {
            (
                format!("`{}` is not a date", s.trim()),
                Some("write dates as YYYY-MM-DD, ranges as 2026-08-03..2026-08-14".to_owned()),
            )
        })
    };
    match text.split_once("..") {
        Some((a, b)) => {
            let (first, last) = (parse(a)?, parse(b)?);
            if last < first {
                return Err((
                    format!("inverted date range `{text}`: it ends before it starts"),
                    Some(format!("write `{last}..{first}`")),
                ));
            }
            if first
                .until(last)
                .map(|span| span.get_days() > 400)
                .unwrap_or(true)
            {
                return Err((format!("date range `{text}` is longer than 400 days"), None));
            }
            Ok((first, last))
        }
        None => parse(text).map(|d| (d, d)),
    }
}

/// Every date of an inclusive range.
pub(crate) fn dates(first: Date, last: Date) -> Vec<Date> {
    if first == last {
        return vec![first];
    }
    let mut out = Vec::new();
    let mut date = first;
    while date <= last {
        out.push(date);
        match date.tomorrow() {
            Ok(next) => date = next,
            Err(_) => break,
        }
    }
    out
}

/// One entry of a shift list or an office-hours list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ShiftSpec {
    /// `Mon-Fri 09:00-13:30`: every week on these days.
    Weekly { days: u8, range: MinuteRange },
    /// `2026-03-14 09:00-12:00` (or a date range): an extra shift on these dates.
    Extra {
        first: Date,
        last: Date,
        range: MinuteRange,
    },
    /// `off 2026-03-10` (whole days: cancels the shifts starting then) or
    /// `off 2026-03-10 09:00-11:00` (that wall-clock range only).
    Off {
        first: Date,
        last: Date,
        range: Option<MinuteRange>,
    },
}

/// Parses one shift string (see [`ShiftSpec`]).
pub(crate) fn parse_shift(text: &str) -> Result<ShiftSpec, ParseError> {
    let text = text.trim();
    let mut words = text.split_whitespace();
    let first_word = words.next().unwrap_or("");
    let (second, third, fourth) = (words.next(), words.next(), words.next());
    if first_word.eq_ignore_ascii_case("off") {
        let (dates, range) = match (second, third, fourth) {
            (Some(dates), None, None) => (dates, None),
            (Some(dates), Some(range), None) => (dates, Some(parse_range(range)?)),
            _ => {
                return Err((
                    format!("`{text}` is not an absence"),
                    Some("write `off 2026-03-10`, `off 2026-08-03..2026-08-14` or `off 2026-03-10 09:00-11:00`".to_owned()),
                ));
            }
        };
        let (first, last) = parse_date_range(dates)?;
        return Ok(ShiftSpec::Off { first, last, range });
    }
    let (Some(range), None) = (second, third) else {
        return Err((
            format!("`{text}` is not a shift"),
            Some("write `Mon-Fri 09:00-13:30`, `daily 22:00-06:00`, `2026-03-14 09:00-12:00` or `off 2026-03-10`".to_owned()),
        ));
    };
    let range = parse_range(range)?;
    if first_word.starts_with(|c: char| c.is_ascii_digit()) {
        let (first, last) = parse_date_range(first_word)?;
        Ok(ShiftSpec::Extra { first, last, range })
    } else {
        Ok(ShiftSpec::Weekly {
            days: parse_days(first_word)?,
            range,
        })
    }
}

/// Easter Sunday (Gregorian), by Gauss's algorithm with its two corrections.
///
/// The tests check it against the Meeus/Jones/Butcher algorithm for 1583..=4099 and against
/// known dates, so an error in either shows.
pub fn easter_sunday(year: i16) -> Date {
    let y = i32::from(year);
    let a = y % 19;
    let b = y % 4;
    let c = y % 7;
    let k = y / 100;
    let p = (13 + 8 * k) / 25;
    let q = k / 4;
    let m = (15 - p + k - q).rem_euclid(30);
    let n = (4 + k - q).rem_euclid(7);
    let d = (19 * a + m) % 30;
    let e = (2 * b + 4 * c + 6 * d + n) % 7;
    // Gauss's exceptions: never April 26, and April 25 only when the Paschal full moon allows.
    let days_from_march_21 = if d == 29 && e == 6 {
        29 // April 19
    } else if d == 28 && e == 6 && (11 * m + 11) % 30 < 19 {
        28 // April 18
    } else {
        d + e + 1
    };
    let march_22 = Date::new(year, 3, 22).expect("March 22 exists in every year jiff supports");
    march_22
        .checked_add(jiff::Span::new().days(i64::from(days_from_march_21 - 1)))
        .expect("Easter is within April of the same year")
}

/// The Italian national holiday on `date`, if any.
///
/// Fixed: Jan 1, Jan 6, Apr 25, May 1, Jun 2, Aug 15, Nov 1, Dec 8, Dec 25, Dec 26; movable:
/// Easter Sunday and Easter Monday. October 4 (St Francis of Assisi and St Catherine of Siena,
/// patron saints of Italy) is national again from 2026 on, by the 2025 law that restored it
/// (it had been abolished in 1977), so it counts from 2026 only. The set is today's: we do not
/// model the 1977-1985 changes for past years. The local patron saint's day is configuration.
pub fn italian_holiday(date: Date) -> Option<&'static str> {
    let fixed = match (date.month(), date.day()) {
        (1, 1) => Some("Capodanno"),
        (1, 6) => Some("Epifania"),
        (4, 25) => Some("Festa della Liberazione"),
        (5, 1) => Some("Festa del Lavoro"),
        (6, 2) => Some("Festa della Repubblica"),
        (8, 15) => Some("Ferragosto (Assunzione)"),
        (10, 4) if date.year() >= 2026 => Some("San Francesco d'Assisi e Santa Caterina da Siena"),
        (11, 1) => Some("Ognissanti"),
        (12, 8) => Some("Immacolata Concezione"),
        (12, 25) => Some("Natale"),
        (12, 26) => Some("Santo Stefano"),
        _ => None,
    };
    if fixed.is_some() || !(3..=4).contains(&date.month()) {
        return fixed;
    }
    let easter = easter_sunday(date.year());
    if date == easter {
        Some("Pasqua")
    } else if easter.tomorrow().is_ok_and(|monday| monday == date) {
        Some("Lunedì dell'Angelo (Pasquetta)")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_days() {
        assert_eq!(
            parse_range("22:00-06:00").unwrap(),
            MinuteRange {
                start: 1320,
                end: 1800
            }
        );
        assert_eq!(
            parse_range("00:00-24:00").unwrap(),
            MinuteRange {
                start: 0,
                end: 1440
            }
        );
        assert!(parse_range("09:00-09:00").is_err());
        assert!(parse_range("9-10").is_err());
        assert_eq!(parse_days("Mon-Fri").unwrap(), 0b1_1111);
        assert_eq!(parse_days("Sat,Sun").unwrap(), 0b110_0000);
        assert!(parse_days("Fri-Mon").is_err());
        assert_eq!(fmt_days(0b101_1111), "Mon-Fri,Sun");
        assert_eq!(
            parse_shift("off 2026-08-03..2026-08-05").unwrap(),
            ShiftSpec::Off {
                first: Date::constant(2026, 8, 3),
                last: Date::constant(2026, 8, 5),
                range: None
            }
        );
    }
}
