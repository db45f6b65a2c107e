//! Keeps docs/configuration.md honest: every flag of every subcommand (as
//! `skein <sub> --help` prints it) must be listed in a table of a section
//! for that subcommand, global flags in a table anywhere; and every flag
//! the doc's tables list must exist, with the environment variable and
//! default that `--help` shows.
//!
//! The doc is split into `##` sections. A section belongs to the
//! subcommands its heading names as `skein <sub>` (one heading may name
//! several, for flags they share); a section naming none may only list
//! global flags. Table rows are `| flag | env var | default | meaning |`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

const DOC: &str = "docs/configuration.md";

/// Flags clap adds to every command; not documented.
const IGNORED: &[&str] = &["--help", "--version"];

/// Subcommands clap adds; not documented.
const IGNORED_SUBCOMMANDS: &[&str] = &["help"];

#[derive(Debug, Default, Clone)]
struct FlagInfo {
    env: Option<String>,
    default: Option<String>,
}

type Flags = BTreeMap<String, FlagInfo>;

/// `skein [args] --help`, with no `SKEIN_*` variable inherited so the help
/// shows plain defaults.
fn help(args: &[&str]) -> String {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skein"));
    cmd.args(args).arg("--help");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SKEIN_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("running skein {args:?} --help: {e}"));
    assert!(
        out.status.success(),
        "skein {args:?} --help failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("help is UTF-8")
}

/// The subcommands listed under `Commands:` in the top-level help.
fn subcommands(top: &str) -> Vec<String> {
    top.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| !IGNORED_SUBCOMMANDS.contains(name))
        .map(str::to_string)
        .collect()
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The long flags a help text defines, with their `[env: ...]` and
/// `[default: ...]`. Only definition lines count (indented at most 6
/// columns); flags mentioned in descriptions (indented 10) do not.
fn help_flags(help: &str) -> Flags {
    let mut flags = Flags::new();
    let mut current: Option<String> = None;
    for line in help.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if indent(line) <= 6 {
            current = None;
            let t = line.trim_start();
            // `-h, --help` or `--flag <VALUE>`.
            let t = match t.split_once(", ") {
                Some((short, rest)) if short.len() == 2 && short.starts_with('-') => rest,
                _ => t,
            };
            if let Some(name) = t.strip_prefix("--") {
                let name: String = name
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                    .collect();
                let flag = format!("--{name}");
                if !IGNORED.contains(&flag.as_str()) {
                    flags.insert(flag.clone(), FlagInfo::default());
                    current = Some(flag);
                }
            }
            continue;
        }
        let Some(flag) = &current else { continue };
        let info = flags.get_mut(flag).expect("current flag is recorded");
        if let Some(v) = bracketed(line, "[env: ") {
            // `[env: NAME=]`, `[env: NAME=value]` or (hidden values) `[env: NAME]`.
            info.env = Some(v.split('=').next().unwrap_or(v).to_string());
        }
        if let Some(v) = bracketed(line, "[default: ") {
            info.default = Some(v.to_string());
        }
    }
    flags
}

fn bracketed<'a>(line: &'a str, open: &str) -> Option<&'a str> {
    let start = line.find(open)? + open.len();
    let len = line[start..].find(']')?;
    Some(&line[start..start + len])
}

/// Every `--long-flag` in a piece of text.
fn flag_tokens(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < bytes.len() {
        let starts = &bytes[i..i + 2] == b"--"
            && bytes[i + 2].is_ascii_lowercase()
            && (i == 0 || !(bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'-'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + 2;
        while j < bytes.len()
            && (bytes[j].is_ascii_alphanumeric() || matches!(bytes[j], b'.' | b'-' | b'_'))
        {
            j += 1;
        }
        out.push(text[i..j].trim_end_matches(['.', '-']).to_string());
        i = j;
    }
    out
}

/// One flag row of a doc table.
#[derive(Debug)]
struct Row {
    flag: String,
    env: String,
    default: String,
}

/// A `##` section of the doc.
#[derive(Debug)]
struct Section {
    heading: String,
    /// The `skein <sub>` names in the heading.
    commands: BTreeSet<String>,
    rows: Vec<Row>,
}

fn strip_cell(cell: &str) -> String {
    cell.trim().replace('`', "")
}

fn sections(doc: &str) -> Vec<Section> {
    let mut out = vec![Section {
        heading: "(before the first section)".into(),
        commands: BTreeSet::new(),
        rows: Vec::new(),
    }];
    let mut in_fence = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        if in_fence {
            continue;
        }
        if let Some(heading) = line.strip_prefix("## ") {
            out.push(Section {
                heading: heading.to_string(),
                commands: heading_commands(heading),
                rows: Vec::new(),
            });
            continue;
        }
        let Some(row) = line.trim().strip_prefix('|') else {
            continue;
        };
        let cells: Vec<&str> = row.split('|').collect();
        let flags = flag_tokens(cells[0]);
        let section = out.last_mut().expect("there is a section");
        for flag in flags {
            section.rows.push(Row {
                flag,
                env: cells.get(1).map(|c| strip_cell(c)).unwrap_or_default(),
                default: cells.get(2).map(|c| strip_cell(c)).unwrap_or_default(),
            });
        }
    }
    out
}

fn heading_commands(heading: &str) -> BTreeSet<String> {
    heading
        .match_indices("skein ")
        .map(|(i, m)| {
            heading[i + m.len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect::<String>()
        })
        .filter(|name| !name.is_empty())
        .collect()
}

/// Compares one table row with what `--help` says about the flag.
fn check_row(row: &Row, info: &FlagInfo, problems: &mut Vec<String>) {
    if let Some(env) = &info.env {
        if row.env != *env {
            problems.push(format!(
                "{}: env var column says {:?}, --help says {env}",
                row.flag, row.env
            ));
        }
    }
    if let Some(default) = &info.default {
        if row.default != *default {
            problems.push(format!(
                "{}: default column says {:?}, --help says {default}",
                row.flag, row.default
            ));
        }
    }
}

#[test]
fn configuration_doc_matches_help() {
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DOC);
    let doc = std::fs::read_to_string(&doc_path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", doc_path.display()));
    let sections = sections(&doc);

    let top = help(&[]);
    let global = help_flags(&top);
    assert!(
        !global.is_empty(),
        "found no global flags in `skein --help`; has its format changed?\n{top}"
    );
    let subs = subcommands(&top);
    assert!(
        !subs.is_empty(),
        "found no subcommands in `skein --help`; has its format changed?\n{top}"
    );

    // Problems, by the command they concern ("skein" for global ones).
    let mut problems: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut counts = Vec::new();

    // Global flags: listed in some table, with the right env var and default.
    let all_rows: Vec<&Row> = sections.iter().flat_map(|s| &s.rows).collect();
    let global_problems = problems.entry("skein".into()).or_default();
    for (flag, info) in &global {
        let rows: Vec<&&Row> = all_rows.iter().filter(|r| &r.flag == flag).collect();
        if rows.is_empty() {
            global_problems.push(format!("global flag {flag} is missing from the doc"));
        }
        for row in rows {
            check_row(row, info, global_problems);
        }
    }
    // Sections that name no subcommand may list global flags only.
    for section in sections.iter().filter(|s| s.commands.is_empty()) {
        for row in &section.rows {
            if !global.contains_key(&row.flag) {
                global_problems.push(format!(
                    "section {:?} lists {}, which is not a global flag of `skein --help` \
                     (name the subcommand in the heading, or remove the row)",
                    section.heading, row.flag
                ));
            }
        }
    }

    // Headings must name existing subcommands only.
    for section in &sections {
        for named in &section.commands {
            if !subs.contains(named) {
                problems.entry("skein".into()).or_default().push(format!(
                    "section {:?} names `skein {named}`, which `skein --help` does not list",
                    section.heading
                ));
            }
        }
    }

    for sub in &subs {
        let flags = help_flags(&help(&[sub]));
        let own: Vec<&String> = flags.keys().filter(|f| !global.contains_key(*f)).collect();
        counts.push(format!("{sub}: {}", own.len()));
        let mine: Vec<&Section> = sections
            .iter()
            .filter(|s| s.commands.contains(sub))
            .collect();
        let p = problems.entry(format!("skein {sub}")).or_default();
        if mine.is_empty() {
            p.push(format!(
                "no section of the doc is about it (want a `## ` heading containing `skein {sub}`)"
            ));
        }
        let listed: BTreeSet<&String> =
            mine.iter().flat_map(|s| &s.rows).map(|r| &r.flag).collect();
        let missing: Vec<&str> = own
            .iter()
            .filter(|f| !listed.contains(*f))
            .map(|f| f.as_str())
            .collect();
        if !missing.is_empty() {
            p.push(format!(
                "flags missing from its section(s): {}",
                missing.join(", ")
            ));
        }
        for section in &mine {
            for row in &section.rows {
                match flags.get(&row.flag) {
                    Some(info) => check_row(row, info, p),
                    None => p.push(format!(
                        "section {:?} lists {}, which `skein {sub} --help` does not have",
                        section.heading, row.flag
                    )),
                }
            }
        }
    }

    problems.retain(|_, v| !v.is_empty());
    if !problems.is_empty() {
        let mut msg = format!("{DOC} is out of step with `skein --help`:\n");
        for (command, list) in &problems {
            msg.push_str(&format!("\n{command}:\n"));
            for p in list {
                msg.push_str(&format!("  - {p}\n"));
            }
        }
        panic!("{msg}");
    }
    println!(
        "{DOC} covers {} global flags and, per subcommand, {}",
        global.len(),
        counts.join(", ")
    );
}

#[test]
fn help_parser() {
    let help = "\
Options:
      --a.b <X>
          Text that mentions --not-a-flag and --min-time.

          [env: SKEIN_A_B=]
          [default: 5m]

      --secret <YAML>
          [env: SKEIN_SECRET]

      --switch
          Possible values:
          - x: y

  -h, --help
          Print help
";
    let flags = help_flags(help);
    assert_eq!(
        flags.keys().map(String::as_str).collect::<Vec<_>>(),
        ["--a.b", "--secret", "--switch"]
    );
    assert_eq!(flags["--a.b"].env.as_deref(), Some("SKEIN_A_B"));
    assert_eq!(flags["--a.b"].default.as_deref(), Some("5m"));
    assert_eq!(flags["--secret"].env.as_deref(), Some("SKEIN_SECRET"));
    assert_eq!(flags["--switch"].default, None);

    assert_eq!(
        flag_tokens("`--endpoint-strict` and --min-time. not a--b or ---x"),
        ["--endpoint-strict", "--min-time"]
    );
    assert_eq!(
        heading_commands("Shared: `skein query`, `skein store`"),
        BTreeSet::from(["query".to_string(), "store".to_string()])
    );
    assert_eq!(
        subcommands("Commands:\n  query  Run\n  help   Print\n\nOptions:\n"),
        ["query"]
    );
}
