//! BENCHMARKS.md, assembled section by section.

use serde_json::Value;

/// A markdown table.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut s = String::new();
    s.push_str(&format!("| {} |\n", header.join(" | ")));
    s.push_str(&format!("|{}\n", header.iter().map(|_| "---|").collect::<String>()));
    for r in rows {
        s.push_str(&format!("| {} |\n", r.join(" | ")));
    }
    s
}

/// The numbers under `key` (an array of numbers, or of objects holding `field`).
pub fn nums(v: &Value, key: &str) -> Vec<f64> {
    v[key].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default()
}

/// `field` of every object of the array `key`.
pub fn field(v: &Value, key: &str, field: &str) -> Vec<f64> {
    v[key].as_array().map(|a| a.iter().filter_map(|o| o[field].as_f64()).collect()).unwrap_or_default()
}

/// The package's exceptions from `append_errors`, e.g. `999 NotImplementedError`.
pub fn errors_text(maps: &[&Value]) -> String {
    let mut total: Vec<(String, u64)> = Vec::new();
    for m in maps {
        if let Some(o) = m.as_object() {
            for (k, v) in o {
                let n = v.as_u64().unwrap_or(0);
                match total.iter_mut().find(|(name, _)| name == k) {
                    Some(e) => e.1 += n,
                    None => total.push((k.clone(), n)),
                }
            }
        }
    }
    if total.is_empty() {
        return "0".into();
    }
    total.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", ")
}

pub fn pct(x: f64) -> String {
    if x >= 0.01 {
        format!("{:.1} %", x * 100.0)
    } else {
        format!("{:.3} %", x * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_and_extraction() {
        let t = table(&["a", "b"], &[vec!["1".into(), "2".into()]]);
        assert_eq!(t, "| a | b |\n|---|---|\n| 1 | 2 |\n");
        let v = json!({"x": [1, 2.5], "r": [{"p": 3}, {"p": 4}]});
        assert_eq!(nums(&v, "x"), vec![1.0, 2.5]);
        assert_eq!(field(&v, "r", "p"), vec![3.0, 4.0]);
        let e = json!({"NotImplementedError": 3});
        assert_eq!(errors_text(&[&e, &e]), "6 NotImplementedError");
        assert_eq!(errors_text(&[&json!({})]), "0");
    }
}
