//! Byte sizes for people: Python's `_format_size` (decimal units, one decimal), used by the
//! library's messages and by the CLI's tables alike, so a user sees one style everywhere.

/// `_format_size`: decimal units, one decimal (`16.0`, `1.0K`, `1.1G`).
pub fn format_size(num: u64) -> String {
    let mut n = num as f64;
    for unit in ["", "K", "M", "G", "T", "P", "E", "Z"] {
        if n.abs() < 1000.0 {
            return format!("{n:3.1}{unit}");
        }
        n /= 1000.0;
    }
    format!("{n:.1}Y")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_format_size() {
        assert_eq!(format_size(0), "0.0");
        assert_eq!(format_size(999), "999.0");
        assert_eq!(format_size(1000), "1.0K");
        assert_eq!(format_size(1 << 30), "1.1G");
        assert_eq!(format_size(u64::MAX), "18.4E");
    }
}
