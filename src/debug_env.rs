//! `RTCORE_DEBUG=name=value,name=value`: the operator's knobs, in the spirit
//! of `GODEBUG`. Every knob is listed in docs/debug.md. Unknown names and bad
//! values are reported once on stderr and otherwise ignored.

use crate::lock::order::Mode;
use crate::sysmon::settings::Setting;

/// Settings read from the environment; `None` means "not set".
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DebugSettings {
    pub lockrank: Option<Mode>,
    /// sysmon thresholds (`threadstall`, `lockstall`, `hookbudget`,
    /// `schedtrace`), in nanoseconds; the values are given in milliseconds.
    pub sysmon: Vec<(Setting, u64)>,
    /// Fault injection for the tracer (`trace_skip_sysmonlock`,
    /// `sysmon_park_after_check`; see record::fault).
    pub trace_skip_sysmonlock: bool,
    pub sysmon_park_after_check: bool,
    /// Full fences on both sides of every gate instead of `membarrier`
    /// (`gate_fences=1`; see record::fence).
    pub gate_fences: bool,
    /// Fault injection for rollovers (`rollover_no_quiesce=1`; see
    /// record::fault).
    pub rollover_no_quiesce: bool,
    /// Fault injection for threads outside the world (`trace_leave_section`,
    /// `trace_never_give_up`; see record::fault).
    pub trace_leave_section: bool,
    pub trace_never_give_up: bool,
    /// The trace clock is CLOCK_MONOTONIC even where the TSC is usable
    /// (`trace_clock=monotonic`; `trace_clock=tsc` is the default).
    pub trace_clock_monotonic: bool,
    /// A lower cap on processors (`procs_cap=N`), to test the cap.
    pub procs_cap: Option<usize>,
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
                    "{VARIABLE}: lockrank={val:?} is not one of off, report, abort, queue; ignored"
                )),
            },
            "trace_clock" => match val {
                "monotonic" => out.trace_clock_monotonic = true,
                "tsc" => out.trace_clock_monotonic = false,
                _ => out.warnings.push(format!(
                    "{VARIABLE}: trace_clock={val:?} is not tsc or monotonic; ignored"
                )),
            },
            "trace_skip_sysmonlock"
            | "sysmon_park_after_check"
            | "gate_fences"
            | "rollover_no_quiesce"
            | "trace_leave_section"
            | "trace_never_give_up" => {
                let on = match val {
                    "1" | "" => true,
                    "0" => false,
                    _ => {
                        out.warnings.push(format!(
                            "{VARIABLE}: {name}={val:?} is not 0 or 1; ignored"
                        ));
                        continue;
                    }
                };
                match name {
                    "trace_skip_sysmonlock" => out.trace_skip_sysmonlock = on,
                    "gate_fences" => out.gate_fences = on,
                    "rollover_no_quiesce" => out.rollover_no_quiesce = on,
                    "trace_leave_section" => out.trace_leave_section = on,
                    "trace_never_give_up" => out.trace_never_give_up = on,
                    _ => out.sysmon_park_after_check = on,
                }
            }
            "procs_cap" => match val.parse::<usize>() {
                Ok(n) if (1..=crate::world::MAX_PROCS).contains(&n) => out.procs_cap = Some(n),
                _ => out.warnings.push(format!(
                    "{VARIABLE}: procs_cap={val:?} is not a number from 1 to {}; ignored",
                    crate::world::MAX_PROCS
                )),
            },
            _ => match Setting::ALL.iter().find(|s| s.name() == name) {
                Some(&setting) => match val.parse::<u64>() {
                    Ok(ms) if ms <= 1_000_000_000 => out.sysmon.push((setting, ms * 1_000_000)),
                    _ => out.warnings.push(format!(
                        "{VARIABLE}: {name}={val:?} is not a number of milliseconds (0 switches it off); ignored"
                    )),
                },
                None => out.warnings.push(format!(
                    "{VARIABLE}: unknown setting '{name}' ignored (known: lockrank, threadstall, lockstall, hookbudget, schedtrace, trace_skip_sysmonlock, sysmon_park_after_check, rollover_no_quiesce, trace_leave_section, trace_never_give_up, procs_cap, gate_fences, trace_clock)"
                )),
            },
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
        assert_eq!(parse("procs_cap=8").procs_cap, Some(8));
        assert_eq!(parse("procs_cap=0").procs_cap, None);
        assert!(parse("procs_cap=0").warnings[0].contains("procs_cap"));
    }

    #[test]
    fn parses_the_trace_fault_knobs() {
        let s = parse("trace_skip_sysmonlock=1,sysmon_park_after_check");
        assert!(s.trace_skip_sysmonlock && s.sysmon_park_after_check);
        let s = parse("gate_fences=1,trace_clock=monotonic");
        assert!(s.gate_fences && s.trace_clock_monotonic && s.warnings.is_empty());
        let s = parse("trace_clock=hpet");
        assert!(!s.trace_clock_monotonic);
        assert!(
            s.warnings[0].contains("not tsc or monotonic"),
            "{:?}",
            s.warnings
        );
        let s = parse("trace_skip_sysmonlock=yes");
        assert!(!s.trace_skip_sysmonlock);
        assert!(s.warnings[0].contains("not 0 or 1"), "{:?}", s.warnings);
    }

    #[test]
    fn parses_sysmon_thresholds_in_milliseconds() {
        let s = parse("schedtrace=1000,threadstall=50,lockstall=0,hookbudget=x");
        assert_eq!(
            s.sysmon,
            vec![
                (Setting::Schedtrace, 1_000_000_000),
                (Setting::ThreadStall, 50_000_000),
                (Setting::LockStall, 0)
            ]
        );
        assert_eq!(s.warnings.len(), 1);
        assert!(
            s.warnings[0].contains("hookbudget=\"x\""),
            "{:?}",
            s.warnings
        );
    }
}
