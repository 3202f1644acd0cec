//! `RTCORE_DEBUG=name=value,name=value`: the operator's knobs, in the spirit
//! of `GODEBUG`. Every knob is listed in docs/debug.md. Unknown names and bad
//! values are reported once on stderr and otherwise ignored.

use crate::lock::order::Mode;

/// Settings read from the environment; `None` means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugSettings {
    pub lockrank: Option<Mode>,
    /// Problems found while parsing, one line each.
    pub warnings: Vec<String>,
}

pub const VARIABLE: &str = "RTCORE_DEBUG";

/// Parse the value of `RTCORE_DEBUG`.
pub fn parse(value: &str) -> DebugSettings {
    let mut out = DebugSettings::default();
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (name, val) = match item.split_once('=') {
            Some((n, v)) => (n.trim(), v.trim()),
            None => (item, ""),
        };
        match name {
            "lockrank" => match Mode::parse(val) {
                Some(m) => out.lockrank = Some(m),
                None => out.warnings.push(format!(
                    "{VARIABLE}: lockrank={val:?} is not one of off, report, abort; ignored"
                )),
            },
            _ => out.warnings.push(format!(
                "{VARIABLE}: unknown setting '{name}' ignored (known: lockrank)"
            )),
        }
    }
    out
}

/// Read and parse the environment, printing each warning once.
pub fn from_env() -> DebugSettings {
    let s = match std::env::var(VARIABLE) {
        Ok(v) => parse(&v),
        Err(std::env::VarError::NotPresent) => DebugSettings::default(),
        Err(std::env::VarError::NotUnicode(_)) => DebugSettings {
            warnings: vec![format!("{VARIABLE} is not valid UTF-8; ignored")],
            ..Default::default()
        },
    };
    for w in &s.warnings {
        crate::diag::eprintln(&format!("rtcore: {w}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_and_reports_unknown() {
        let s = parse("lockrank=abort, bogus=1,lockrank=off");
        assert_eq!(s.lockrank, Some(Mode::Off));
        assert_eq!(s.warnings.len(), 1);
        assert!(s.warnings[0].contains("unknown setting 'bogus'"));
        let s = parse("lockrank=loud");
        assert_eq!(s.lockrank, None);
        assert!(s.warnings[0].contains("\"loud\""));
        assert_eq!(parse("").warnings.len(), 0);
    }
}
