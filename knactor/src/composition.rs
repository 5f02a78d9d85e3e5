//! Checks across the specs of a composition, which no spec's own check can see: a field cycle
//! that spans specs (`a.x → b.y` in one, `b.y → a.x` in another), two specs writing one field,
//! and Sync flows of different specs feeding each other in a loop. Each problem is an error in
//! the spec being checked, naming where the other spec does its part.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use integrators::loops::loops;
use integrators::source::{Diagnostic, Severity, SpecFile, Step};

use crate::specs::Checked;

/// What a spec does to the composition's data, each part with where the spec declares it.
#[derive(Clone, Debug)]
pub struct Footprint {
    name: String,
    /// Cast: a field read flowing into a field written, `store.field` each.
    fields: Vec<(String, String, Place)>,
    /// Cast: the top-level fields written, `store.field`.
    writes: BTreeMap<String, Place>,
    /// Sync: a store read flowing into a store appended to.
    stores: Vec<(String, String, Place)>,
}

/// Where a part of a spec (an edge, a flow) is declared.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Place {
    file: PathBuf,
    line: usize,
    column: usize,
    /// `edge NAME` or `flow NAME`.
    part: String,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (file, line, column) = (self.file.display(), self.line, self.column);
        write!(f, "{} at {file}:{line}:{column}", self.part)
    }
}

impl Place {
    /// An error here.
    fn error(&self, message: String) -> Diagnostic {
        let (file, line, column) = (self.file.clone(), self.line, self.column);
        Diagnostic { severity: Severity::Error, file, line, column, message }
    }
}

impl Footprint {
    /// The footprint of `checked`, read from `file`.
    pub fn of(file: &SpecFile, checked: &Checked) -> Self {
        let place = |list: &'static str, index: usize, key: &'static str, part: String| {
            let steps = [Step::Key("spec"), Step::Key(list), Step::Index(index), Step::Key(key)];
            let (line, column) = file.locate(&steps);
            Place { file: file.path().to_owned(), line, column, part }
        };
        let mut footprint = Footprint {
            name: checked.name().to_owned(),
            fields: Vec::new(),
            writes: BTreeMap::new(),
            stores: Vec::new(),
        };
        match checked {
            Checked::Cast(plan, _) => {
                let edge = |i: usize| {
                    place("edges", i, "set", format!("edge `{}`", plan.edges[i].spec.name))
                };
                for flow in plan.field_flows() {
                    footprint.fields.push((flow.from, flow.to, edge(flow.edge)));
                }
                footprint.writes =
                    plan.field_writes().into_iter().map(|(f, i)| (f, edge(i))).collect();
            }
            Checked::Sync(plan) => {
                for (from, to, i) in plan.store_flows() {
                    let at = place("flows", i, "to", format!("flow `{}`", plan.flows[i].spec.name));
                    footprint.stores.push((from.to_string(), to.to_string(), at));
                }
            }
        }
        footprint
    }

    /// Sync: the stores its flows append to.
    pub fn appends_to(&self) -> impl Iterator<Item = &str> {
        self.stores.iter().map(|(_, to, _)| to.as_str())
    }

    /// The spec's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What this spec breaks beside `others` (the other specs of the composition; one of its
    /// own name, which it replaces, is left out).
    pub fn conflicts<'a>(
        &self,
        others: impl IntoIterator<Item = &'a Footprint>,
    ) -> Vec<Diagnostic> {
        let others: Vec<&Footprint> = others.into_iter().filter(|o| o.name != self.name).collect();
        let mut problems = Vec::new();
        for (field, mine) in &self.writes {
            for other in &others {
                if let Some(theirs) = other.writes.get(field) {
                    problems.push(mine.error(format!(
                        "`{field}` is also written by spec `{}` ({theirs}): two specs writing one field overwrite each other",
                        other.name
                    )));
                }
            }
        }
        type Arcs = fn(&Footprint) -> &Vec<(String, String, Place)>;
        let kinds: [(&str, Arcs); 2] = [
            ("field-level cycle across specs", |f| &f.fields),
            ("Sync flows of several specs feed each other in a loop", |f| &f.stores),
        ];
        for (what, arcs_of) in kinds {
            let members = std::iter::once(self).chain(others.iter().copied());
            let arcs = members.enumerate().flat_map(|(member, footprint)| {
                arcs_of(footprint)
                    .iter()
                    .map(move |(from, to, at)| (from.clone(), to.clone(), (member, at.clone())))
            });
            for found in loops(arcs) {
                let mine = found.arcs.iter().find(|(member, _)| *member == 0);
                let theirs = found.arcs.iter().find(|(member, _)| *member != 0);
                let (Some((_, mine)), Some((member, theirs))) = (mine, theirs) else { continue };
                let other = &others[member - 1].name;
                problems.push(mine.error(format!(
                    "{what}: {}, through spec `{other}` ({theirs})",
                    found.describe()
                )));
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use serde_json::json;

    use crate::specs::{StoreSchemas, check};

    /// The footprint of the spec `text`, read from `file`, checked against two Object stores
    /// (fields `x`, `y`, `z`, `w`, which edges may write) and two Log stores.
    fn footprint(file: &str, text: &str) -> Footprint {
        let file = SpecFile::from_text(Path::new(file), text);
        let field = json!({"type": "string", "x-knactor-ingest": true});
        let fields = ["x", "y", "z", "w"].map(|f| (f.to_owned(), field.clone()));
        let object = json!({"type": "object", "properties": serde_json::Map::from_iter(fields)});
        let objects = ["k/a", "k/b"].map(|s| (s.parse().unwrap(), object.clone()));
        let record = json!({"type": "object", "properties": {"room": {"type": "string"}}});
        let logs =
            ["motion/readings", "house/motion"].map(|s| (s.parse().unwrap(), record.clone()));
        let schemas = StoreSchemas { objects: objects.into(), logs: logs.into() };
        let checked = check(&file, Some(&schemas)).unwrap_or_else(|e| panic!("{e}"));
        Footprint::of(&file, &checked)
    }

    fn cast(name: &str, edges: &str) -> String {
        format!(
            "apiVersion: knactor.dev/v1\nkind: Cast\nmetadata: {{name: {name}}}\nspec:\n  inputs:\n    a: k/a\n    b: k/b\n  edges:\n{edges}"
        )
    }

    #[test]
    fn a_field_cycle_across_two_specs_is_an_error_naming_both_places() {
        let forth = footprint(
            "forth.yaml",
            &cast("forth", "    - {name: ab, from: [a], to: b, set: {y: a.x}}\n"),
        );
        let back = footprint(
            "back.yaml",
            &cast("back", "    - {name: ba, from: [b], to: a, set: {x: b.y}}\n"),
        );
        let problems = back.conflicts([&forth]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let message = problems[0].to_string();
        assert!(message.starts_with("back.yaml:9:"), "{message}");
        assert!(
            message.contains("field-level cycle across specs: k/a.x → k/b.y → k/a.x"),
            "{message}"
        );
        assert!(message.contains("spec `forth` (edge `ab` at forth.yaml:9:"), "{message}");
        // Each alone, or the same spec re-applied, is fine.
        assert!(
            back.conflicts([&footprint(
                "back.yaml",
                &cast("back", "    - {name: ab, from: [a], to: b, set: {y: a.x}}\n")
            )])
            .is_empty()
        );
    }

    #[test]
    fn two_specs_writing_one_field_is_an_error() {
        let one = footprint(
            "one.yaml",
            &cast("one", "    - {name: e1, from: [a], to: b, set: {y: a.x}}\n"),
        );
        let other = footprint(
            "other.yaml",
            &cast("other", "    - {name: e2, from: [a], to: b, set: {y: a.z, w: a.x}}\n"),
        );
        let problems = other.conflicts([&one]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].message.contains("`k/b.y` is also written by spec `one` (edge `e1`"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn sync_flows_of_two_specs_feeding_each_other_are_an_error() {
        let sync = |name: &str, from: &str, to: &str| {
            format!(
                "apiVersion: knactor.dev/v1\nkind: Sync\nmetadata: {{name: {name}}}\nspec:\n  flows:\n    - name: {name}\n      from: {from}\n      to: {to}\n"
            )
        };
        let readings =
            footprint("readings.yaml", &sync("readings", "motion/readings", "house/motion"));
        let back = footprint("back.yaml", &sync("back", "house/motion", "motion/readings"));
        let problems = back.conflicts([&readings]);
        assert_eq!(problems.len(), 1, "{problems:?}");
        let message = &problems[0].message;
        assert!(
            message.contains(
                "feed each other in a loop: house/motion → motion/readings → house/motion"
            ),
            "{message}"
        );
        assert!(
            message.contains("spec `readings` (flow `readings` at readings.yaml:"),
            "{message}"
        );
    }
}
