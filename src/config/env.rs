//! `${NAME}` references in config strings, expanded from the environment before validation.

use toml::Value;

/// Replace every `${NAME}` in every string of `value`. An unset variable is an error naming the
/// key that referred to it (as `(key path, variable)`).
pub fn expand(value: &mut Value, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), (String, String)> {
    walk(value, String::new(), lookup)
}

fn walk(value: &mut Value, path: String, lookup: &dyn Fn(&str) -> Option<String>) -> Result<(), (String, String)> {
    match value {
        Value::String(s) if s.contains("${") => {
            *s = expand_str(s, lookup).map_err(|var| (path, var))?;
        }
        Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{path}[{i}]"), lookup)?;
            }
        }
        Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                let child = if path.is_empty() { k.clone() } else { format!("{path}.{k}") };
                walk(v, child, lookup)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn expand_str(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after.find('}').ok_or_else(|| format!("unterminated ${{ in \"{s}\""))?;
        let name = &after[..end];
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            return Err(format!("bad variable name \"{name}\""));
        }
        out.push_str(&lookup(name).ok_or_else(|| name.to_owned())?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(name: &str) -> Option<String> {
        (name == "SET").then(|| "value".to_owned())
    }

    #[test]
    fn expands_and_names_unset_keys() {
        let mut v: Value = toml::from_str("a = 'x-${SET}-y'\n[[t]]\nb = '${UNSET}'").unwrap();
        assert_eq!(expand(&mut v, &lookup), Err(("t[0].b".into(), "UNSET".into())));
        let mut v: Value = toml::from_str("a = 'x-${SET}-${SET}'").unwrap();
        expand(&mut v, &lookup).unwrap();
        assert_eq!(v["a"].as_str(), Some("x-value-value"));
    }

    #[test]
    fn malformed_references_are_errors() {
        let mut v: Value = toml::from_str("a = '${SET'").unwrap();
        assert!(expand(&mut v, &lookup).is_err());
        let mut v: Value = toml::from_str("a = '${A-B}'").unwrap();
        assert!(expand(&mut v, &lookup).is_err());
    }
}
