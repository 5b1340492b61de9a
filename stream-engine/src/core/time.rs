//! RFC 3339 timestamps to and from UTC milliseconds since the Unix epoch.
//!
//! Hand-written rather than a date library because it sits on the decode hot path: a timestamp
//! is parsed for every event. The parser is strict RFC 3339 (section 5.6): a four-digit year,
//! `T`/`t` (or a space, which the RFC allows by agreement) between date and time, optional
//! fractional seconds of any length (truncated to milliseconds), and `Z`/`z` or a `±HH:MM`
//! offset. Second 60 (a leap second) is accepted and, as in POSIX time, counts as the first
//! second of the next minute.

/// Milliseconds in one minute: the window length.
pub const MINUTE_MS: i64 = 60_000;

/// Why a timestamp was refused. The message names the part that is wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimestampError {
    /// Not of the shape `YYYY-MM-DDTHH:MM:SS[.fff]Z|±HH:MM`.
    Format,
    /// A field outside its range (month 13, 31 April, hour 24, offset minute 60, ...).
    Range,
}

impl TimestampError {
    pub fn message(self) -> &'static str {
        match self {
            TimestampError::Format => {
                "timestamp is not RFC 3339 (expected YYYY-MM-DDTHH:MM:SS[.fraction](Z|+HH:MM|-HH:MM))"
            }
            TimestampError::Range => "timestamp has a date, time or offset field out of range",
        }
    }
}

/// Parses an RFC 3339 timestamp into UTC milliseconds since the epoch.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, TimestampError> {
    let b = s.as_bytes();
    // Shortest form: "YYYY-MM-DDTHH:MM:SSZ" (20 bytes).
    if b.len() < 20 {
        return Err(TimestampError::Format);
    }
    let year = digits4(b, 0)?;
    expect(b, 4, b'-')?;
    let month = digits2(b, 5)?;
    expect(b, 7, b'-')?;
    let day = digits2(b, 8)?;
    if !matches!(b[10], b'T' | b't' | b' ') {
        return Err(TimestampError::Format);
    }
    let hour = digits2(b, 11)?;
    expect(b, 13, b':')?;
    let minute = digits2(b, 14)?;
    expect(b, 16, b':')?;
    let second = digits2(b, 17)?;

    let mut i = 19;
    let mut millis = 0i64;
    if b[i] == b'.' {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            if i - start < 3 {
                millis = millis * 10 + i64::from(b[i] - b'0');
            }
            i += 1;
        }
        let n = i - start;
        if n == 0 {
            return Err(TimestampError::Format);
        }
        for _ in n..3 {
            millis *= 10;
        }
    }
    let offset_minutes = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let oh = digits2(b, i + 1)?;
            expect(b, i + 3, b':')?;
            let om = digits2(b, i + 4)?;
            if oh > 23 || om > 59 {
                return Err(TimestampError::Range);
            }
            let total = i64::from(oh * 60 + om);
            if sign == b'-' { -total } else { total }
        }
        _ => return Err(TimestampError::Format),
    };

    if !(1..=12).contains(&month)
        || day == 0
        || day > days_in_month(year, month)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return Err(TimestampError::Range);
    }
    let days = days_from_civil(i64::from(year), month, day);
    let seconds =
        days * 86_400 + i64::from(hour * 3600 + minute * 60 + second) - offset_minutes * 60;
    Ok(seconds * 1000 + millis)
}

/// Formats UTC milliseconds as RFC 3339 with a `Z`: `2024-01-01T12:00:00Z`, with `.mmm` only
/// when the milliseconds are not zero. Years outside 0000..=9999 are clamped into that range
/// (they cannot come from a parsed timestamp).
pub fn format_rfc3339_ms(ms: i64) -> String {
    let mut out = String::with_capacity(24);
    write_rfc3339_ms(ms, &mut out);
    out
}

/// [`format_rfc3339_ms`] appending to a buffer.
pub fn write_rfc3339_ms(ms: i64, out: &mut String) {
    const MIN_MS: i64 = -62_167_219_200_000; // 0000-01-01T00:00:00Z
    const MAX_MS: i64 = 253_402_300_799_999; // 9999-12-31T23:59:59.999Z
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let mut buf = [0u8; 24];
    put4(&mut buf[0..4], year as u32);
    buf[4] = b'-';
    put2(&mut buf[5..7], month);
    buf[7] = b'-';
    put2(&mut buf[8..10], day);
    buf[10] = b'T';
    put2(&mut buf[11..13], (sod / 3600) as u32);
    buf[13] = b':';
    put2(&mut buf[14..16], (sod / 60 % 60) as u32);
    buf[16] = b':';
    put2(&mut buf[17..19], (sod % 60) as u32);
    let len = if millis == 0 {
        buf[19] = b'Z';
        20
    } else {
        buf[19] = b'.';
        put2(&mut buf[20..22], (millis / 10) as u32);
        buf[22] = b'0' + (millis % 10) as u8;
        buf[23] = b'Z';
        24
    };
    // Every byte written above is ASCII.
    out.extend(buf[..len].iter().map(|&c| c as char));
}

/// Start of the one-minute window holding `ts_ms`: `floor(ts / 60 s) * 60 s`.
#[inline]
pub fn window_start(ts_ms: i64) -> i64 {
    ts_ms.div_euclid(MINUTE_MS) * MINUTE_MS
}

#[inline]
fn expect(b: &[u8], i: usize, c: u8) -> Result<(), TimestampError> {
    if b[i] == c {
        Ok(())
    } else {
        Err(TimestampError::Format)
    }
}

#[inline]
fn digit(b: &[u8], i: usize) -> Result<u32, TimestampError> {
    match b.get(i) {
        Some(c @ b'0'..=b'9') => Ok(u32::from(c - b'0')),
        _ => Err(TimestampError::Format),
    }
}

#[inline]
fn digits2(b: &[u8], i: usize) -> Result<u32, TimestampError> {
    Ok(digit(b, i)? * 10 + digit(b, i + 1)?)
}

#[inline]
fn digits4(b: &[u8], i: usize) -> Result<u32, TimestampError> {
    Ok(digits2(b, i)? * 100 + digits2(b, i + 2)?)
}

fn put2(out: &mut [u8], v: u32) {
    out[0] = b'0' + (v / 10 % 10) as u8;
    out[1] = b'0' + (v % 10) as u8;
}

fn put4(out: &mut [u8], v: u32) {
    put2(&mut out[0..2], v / 100);
    put2(&mut out[2..4], v % 100);
}

fn is_leap(year: u32) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_utc_and_offsets_to_the_same_instant() {
        let utc = parse_rfc3339_ms("2024-01-01T12:00:00Z").unwrap();
        assert_eq!(utc, 1_704_110_400_000);
        assert_eq!(parse_rfc3339_ms("2024-01-01T14:00:00+02:00"), Ok(utc));
        assert_eq!(parse_rfc3339_ms("2024-01-01T06:30:00-05:30"), Ok(utc));
        assert_eq!(parse_rfc3339_ms("2024-01-01t12:00:00z"), Ok(utc));
        assert_eq!(parse_rfc3339_ms("2024-01-01 12:00:00+00:00"), Ok(utc));
        // An offset can move the instant across a day and a year boundary.
        assert_eq!(parse_rfc3339_ms("2023-12-31T23:30:00-12:30"), Ok(utc));
    }

    #[test]
    fn fractions_are_truncated_to_milliseconds() {
        let base = 1_704_110_400_000;
        assert_eq!(parse_rfc3339_ms("2024-01-01T12:00:00.5Z"), Ok(base + 500));
        assert_eq!(parse_rfc3339_ms("2024-01-01T12:00:00.05Z"), Ok(base + 50));
        assert_eq!(parse_rfc3339_ms("2024-01-01T12:00:00.123Z"), Ok(base + 123));
        assert_eq!(
            parse_rfc3339_ms("2024-01-01T12:00:00.123999999Z"),
            Ok(base + 123)
        );
        assert_eq!(parse_rfc3339_ms("1969-12-31T23:59:59.999Z"), Ok(-1));
    }

    #[test]
    fn leap_second_is_the_next_minute() {
        assert_eq!(
            parse_rfc3339_ms("2016-12-31T23:59:60Z"),
            parse_rfc3339_ms("2017-01-01T00:00:00Z")
        );
    }

    #[test]
    fn rejects_malformed_and_out_of_range() {
        use TimestampError::*;
        for (input, want) in [
            ("", Format),
            ("2024-01-01", Format),
            ("2024-01-01T12:00:00", Format),
            ("2024-01-01T12:00Z", Format),
            ("2024-01-01T12:00:00.Z", Format),
            ("2024-01-01T12:00:00+0200", Format),
            ("2024-01-01T12:00:00+02", Format),
            ("2024-01-01T12:00:00Z ", Format),
            ("2024/01/01T12:00:00Z", Format),
            ("2024-1-01T12:00:00Z_", Format),
            ("+2024-01-01T12:00:00Z", Format),
            ("2024-01-01X12:00:00Z", Format),
            ("１２３４-01-01T12:00:00Z", Format),
            ("2024-13-01T12:00:00Z", Range),
            ("2024-00-01T12:00:00Z", Range),
            ("2023-02-29T12:00:00Z", Range),
            ("2024-04-31T12:00:00Z", Range),
            ("2024-01-01T24:00:00Z", Range),
            ("2024-01-01T12:60:00Z", Range),
            ("2024-01-01T12:00:61Z", Range),
            ("2024-01-01T12:00:00+24:00", Range),
            ("2024-01-01T12:00:00+01:60", Range),
        ] {
            assert_eq!(parse_rfc3339_ms(input), Err(want), "{input:?}");
        }
        assert!(parse_rfc3339_ms("2024-02-29T12:00:00Z").is_ok());
        assert!(parse_rfc3339_ms("2000-02-29T12:00:00Z").is_ok());
        assert_eq!(parse_rfc3339_ms("1900-02-29T12:00:00Z"), Err(Range));
    }

    #[test]
    fn formats_with_z_and_optional_millis() {
        assert_eq!(format_rfc3339_ms(1_704_110_400_000), "2024-01-01T12:00:00Z");
        assert_eq!(
            format_rfc3339_ms(1_704_110_400_007),
            "2024-01-01T12:00:00.007Z"
        );
        assert_eq!(format_rfc3339_ms(0), "1970-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_ms(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339_ms(i64::MIN), "0000-01-01T00:00:00Z");
        assert_eq!(format_rfc3339_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
    }

    #[test]
    fn window_start_floors_in_event_time() {
        assert_eq!(window_start(0), 0);
        assert_eq!(window_start(59_999), 0);
        assert_eq!(window_start(60_000), 60_000);
        assert_eq!(window_start(-1), -60_000);
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(ms in -62_167_219_200_000i64..253_402_300_799_999) {
            prop_assert_eq!(parse_rfc3339_ms(&format_rfc3339_ms(ms)), Ok(ms));
        }

        #[test]
        fn offsets_shift_by_exactly_the_offset(
            ms in 0i64..4_000_000_000_000,
            offset_min in -1439i64..=1439,
        ) {
            // Render the same instant as local time at `offset_min` and check we get it back.
            let local = format_rfc3339_ms(ms + offset_min * 60_000);
            let sign = if offset_min < 0 { '-' } else { '+' };
            let abs = offset_min.abs();
            let text = format!("{}{sign}{:02}:{:02}", &local[..local.len() - 1], abs / 60, abs % 60);
            prop_assert_eq!(parse_rfc3339_ms(&text), Ok(ms));
        }

        #[test]
        fn never_panics_on_arbitrary_text(s in "\\PC{0,40}") {
            let _ = parse_rfc3339_ms(&s);
        }
    }
}
