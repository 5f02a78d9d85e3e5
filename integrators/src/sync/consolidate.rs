//! Consolidation: flows that read the same sources and begin with the same stateless operators
//! compute that shared prefix once per batch. The flows' prefixes form a trie; each trie node
//! fuses the operators its flows have in common into one [`Map`].

use std::sync::Arc;

use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::prelude::SessionContext;

use super::expr::{Map, OpError};
use super::spec::OpSpec;

/// A flow's records after its prefix, or why the prefix failed on them (one error shared by
/// every flow below the failing operators).
pub type Prefixed = Result<RecordBatch, Arc<DataFusionError>>;

/// The shared prefixes of a group of flows (numbered from 0 in the group).
#[derive(Debug)]
pub struct Trie {
    root: Node,
}

#[derive(Debug)]
struct Node {
    map: Option<Map>,
    children: Vec<Node>,
    /// The flows whose prefix ends here.
    ends: Vec<usize>,
    /// Every flow at or below this node.
    members: Vec<usize>,
}

impl Trie {
    /// Builds the trie of `prefixes` (flow → its leading stateless operators) over records of
    /// `input`; with `share` false, every flow gets its own branch (to measure what sharing
    /// saves). Returns the trie and the schema each flow's prefix produces.
    pub fn build(
        ctx: &SessionContext,
        input: &SchemaRef,
        prefixes: &[&[OpSpec]],
        share: bool,
    ) -> Result<(Trie, Vec<SchemaRef>), OpError> {
        let mut schemas = vec![input.clone(); prefixes.len()];
        let entries: Vec<(usize, &[OpSpec])> = prefixes.iter().copied().enumerate().collect();
        let root = node(ctx, input, None, entries, share, &mut schemas)?;
        Ok((Trie { root }, schemas))
    }

    /// Runs `batch` through the prefixes of the `active` flows; pushes each one's output, or
    /// the error that stopped it (which stops only the flows below the failing operators).
    pub fn run(&self, batch: &RecordBatch, active: &[bool], out: &mut Vec<(usize, Prefixed)>) {
        self.root.run(batch, active, out);
    }

    /// How many fused maps a batch goes through when every flow is active.
    pub fn maps(&self) -> usize {
        fn count(node: &Node) -> usize {
            usize::from(node.map.is_some()) + node.children.iter().map(count).sum::<usize>()
        }
        count(&self.root)
    }
}

fn node(
    ctx: &SessionContext,
    schema: &SchemaRef,
    map: Option<Map>,
    entries: Vec<(usize, &[OpSpec])>,
    share: bool,
    schemas: &mut [SchemaRef],
) -> Result<Node, OpError> {
    let members = entries.iter().map(|(flow, _)| *flow).collect();
    let mut ends = Vec::new();
    let mut groups: Vec<Vec<(usize, &[OpSpec])>> = Vec::new();
    for (flow, ops) in entries {
        if ops.is_empty() {
            schemas[flow] = schema.clone();
            ends.push(flow);
            continue;
        }
        match groups.iter_mut().find(|g| share && g[0].1[0] == ops[0]) {
            Some(group) => group.push((flow, ops)),
            None => groups.push(vec![(flow, ops)]),
        }
    }
    let mut children = Vec::new();
    for group in groups {
        let first = group[0].1;
        let common = (1..=first.len())
            .take_while(|&n| group.iter().all(|(_, ops)| ops.len() >= n && ops[..n] == first[..n]))
            .last()
            .unwrap_or(1);
        let map = Map::compile(ctx, schema, &first[..common]).map_err(|(_, e)| e)?;
        let output = map.schema().clone();
        let rest = group.into_iter().map(|(flow, ops)| (flow, &ops[common..])).collect();
        children.push(node(ctx, &output, Some(map), rest, share, schemas)?);
    }
    Ok(Node { map, children, ends, members })
}

impl Node {
    fn run(&self, batch: &RecordBatch, active: &[bool], out: &mut Vec<(usize, Prefixed)>) {
        let mut members = self.members.iter().copied().filter(|&flow| active[flow]).peekable();
        if members.peek().is_none() {
            return;
        }
        let mapped;
        let batch = match self.map.as_ref().map(|map| map.apply(batch)) {
            Some(Ok(batch)) => {
                mapped = batch;
                &mapped
            }
            Some(Err(e)) => {
                let error = Arc::new(e);
                out.extend(members.map(|flow| (flow, Err(error.clone()))));
                return;
            }
            None => batch,
        };
        let ends = self.ends.iter().filter(|&&flow| active[flow]);
        out.extend(ends.map(|&flow| (flow, Ok(batch.clone()))));
        for child in &self.children {
            child.run(batch, active, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sync::expr::session;
    use arrow::array::{BooleanArray, StringArray};

    fn ops(yaml: &str) -> Vec<OpSpec> {
        let de = serde_yaml::Deserializer::from_str(yaml);
        serde_yaml::with::singleton_map_recursive::deserialize(de).unwrap()
    }

    #[test]
    fn flows_with_a_common_prefix_share_its_map() {
        let batch = RecordBatch::try_from_iter([
            ("room", Arc::new(StringArray::from(vec!["hall", "study"])) as _),
            ("triggered", Arc::new(BooleanArray::from(vec![true, false])) as _),
        ])
        .unwrap();
        let a = ops("[{filter: triggered}, {rename: {triggered: motion}}, {select: [room]}]");
        let b = ops("[{filter: triggered}, {rename: {triggered: motion}}]");
        let c = ops("[{select: [room]}]");
        let prefixes = [&a[..], &b[..], &c[..], &b[..]];
        let ctx = session();
        let (shared, schemas) = Trie::build(&ctx, &batch.schema(), &prefixes, true).unwrap();
        assert_eq!(shared.maps(), 3, "filter+rename once, then a's select, and c's select");
        assert_eq!(schemas[1].field(1).name(), "motion");
        let (apart, _) = Trie::build(&ctx, &batch.schema(), &prefixes, false).unwrap();
        assert_eq!(apart.maps(), 4);
        let mut out = Vec::new();
        shared.run(&batch, &[true, true, false, true], &mut out);
        let rows: Vec<(usize, usize)> =
            out.iter().map(|(f, b)| (*f, b.as_ref().unwrap().num_rows())).collect();
        assert_eq!(rows, [(1, 1), (3, 1), (0, 1)]);
    }
}
