//! The log text every scenario appends, generated the same way by `bench/python/driver.py`, so
//! the harness can check what the server stored against what was meant.

/// Line `i` of `len` bytes (at least 10): an 8-digit index, a space, letters, a newline.
pub fn line(i: usize, len: usize) -> Vec<u8> {
    let mut v = format!("{:08} ", i % 100_000_000).into_bytes();
    let letters = b"abcdefghijklmnopqrstuvwxyz";
    while v.len() < len - 1 {
        v.push(letters[(v.len() - 9) % 26]);
    }
    v.push(b'\n');
    v
}

/// The first `total` bytes of the stream of 100-byte lines 0, 1, 2...
pub fn stream(total: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(total + 100);
    let mut i = 0;
    while v.len() < total {
        v.extend_from_slice(&line(i, 100));
        i += 1;
    }
    v.truncate(total);
    v
}

/// The log of a scale-out job: `lines` lines naming the job.
pub fn job_lines(job_id: i64, lines: usize, len: usize) -> Vec<Vec<u8>> {
    (0..lines)
        .map(|i| {
            let mut l = format!("job {job_id} ").into_bytes();
            l.extend_from_slice(&line(i, len.saturating_sub(l.len()).max(10)));
            l
        })
        .collect()
}

/// What the Python package stores in front of every log.
pub const PYTHON_HEADER: &str = "Running with gitlab_runner_api 1.0.4\n";

/// How much of `expected` the server holds: `stored.len() / expected.len()` when `stored` is a
/// prefix of it (1.0 = complete), or None when it holds something else (duplicated or corrupt).
pub fn completeness(stored: &[u8], expected: &[u8]) -> Option<f64> {
    if expected.is_empty() {
        return Some(if stored.is_empty() { 1.0 } else { 0.0 });
    }
    expected.starts_with(stored).then(|| stored.len() as f64 / expected.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_their_length_and_index() {
        let l = line(7, 100);
        assert_eq!(l.len(), 100);
        assert!(l.starts_with(b"00000007 abc"));
        assert_eq!(*l.last().unwrap(), b'\n');
        assert_eq!(stream(250).len(), 250);
        assert_eq!(&stream(250)[100..109], b"00000001 ");
        assert_eq!(job_lines(42, 2, 100)[1].len(), 100);
        assert_eq!(completeness(b"ab", b"abcd"), Some(0.5));
        assert_eq!(completeness(b"ax", b"abcd"), None);
    }
}
