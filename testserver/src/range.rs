//! HTTP `Range` requests on artifact downloads (RFC 9110 §14), as GitLab serves files through
//! Workhorse or object storage: one byte range gets 206 with `Content-Range`, a range past the
//! end gets 416 with `Content-Range: bytes */<size>`. A header that is not one well-formed byte
//! range (another unit, bad syntax, several ranges) is ignored and the whole file is sent, as
//! object storage (S3) does with several ranges.

/// What to send for a `Range` header on a file of `size` bytes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    Whole,
    /// Inclusive byte positions, `first <= last < size`.
    Partial {
        first: usize,
        last: usize,
    },
    Unsatisfiable,
}

pub(crate) fn answer(header: Option<&str>, size: usize) -> RangeAnswer {
    let Some(spec) = header.map(str::trim) else { return RangeAnswer::Whole };
    let Some((unit, set)) = spec.split_once('=') else { return RangeAnswer::Whole };
    if !unit.trim().eq_ignore_ascii_case("bytes") || set.contains(',') {
        return RangeAnswer::Whole;
    }
    let Some((first, last)) = set.trim().split_once('-') else { return RangeAnswer::Whole };
    let number = |s: &str| if s.chars().all(|c| c.is_ascii_digit()) { s.parse::<usize>().ok() } else { None };
    match (first.trim(), last.trim()) {
        ("", "") => RangeAnswer::Whole,
        // `-N`: the last N bytes.
        ("", n) => match number(n) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            Some(_) if size == 0 => RangeAnswer::Unsatisfiable,
            Some(n) => RangeAnswer::Partial { first: size.saturating_sub(n), last: size - 1 },
        },
        (a, b) => {
            let Some(a) = number(a) else { return RangeAnswer::Whole };
            let b = if b.is_empty() { None } else { number(b) };
            if !last.trim().is_empty() && b.is_none() {
                return RangeAnswer::Whole;
            }
            if b.is_some_and(|b| b < a) {
                return RangeAnswer::Whole;
            }
            if a >= size {
                return RangeAnswer::Unsatisfiable;
            }
            RangeAnswer::Partial { first: a, last: b.map_or(size - 1, |b| b.min(size - 1)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{answer, RangeAnswer::*};

    #[test]
    fn single_ranges() {
        assert_eq!(answer(Some("bytes=0-3"), 10), Partial { first: 0, last: 3 });
        assert_eq!(answer(Some("bytes=5-"), 10), Partial { first: 5, last: 9 });
        assert_eq!(answer(Some("bytes=-4"), 10), Partial { first: 6, last: 9 });
        assert_eq!(answer(Some("bytes=-40"), 10), Partial { first: 0, last: 9 });
        assert_eq!(answer(Some("bytes=8-100"), 10), Partial { first: 8, last: 9 });
        assert_eq!(answer(Some("Bytes = 1-1"), 10), Partial { first: 1, last: 1 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(answer(Some("bytes=10-"), 10), Unsatisfiable);
        assert_eq!(answer(Some("bytes=10-20"), 10), Unsatisfiable);
        assert_eq!(answer(Some("bytes=-0"), 10), Unsatisfiable);
        assert_eq!(answer(Some("bytes=0-0"), 0), Unsatisfiable);
        assert_eq!(answer(Some("bytes=-5"), 0), Unsatisfiable);
    }

    #[test]
    fn ignored_headers_send_the_whole_file() {
        for h in ["items=0-3", "bytes=a-b", "bytes=3-1", "bytes=0-1,4-5", "bytes=-", "bytes", "bytes=1-x", "bytes=+1-2"]
        {
            assert_eq!(answer(Some(h), 10), Whole, "{h}");
        }
        assert_eq!(answer(None, 10), Whole);
    }
}
