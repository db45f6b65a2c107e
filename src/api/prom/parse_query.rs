//! `/api/v1/parse_query`: a query's syntax tree as JSON, in the shape
//! Prometheus' API gives it to tree views (each node an object with a
//! `type`; selectors with their matchers, the metric name's last; ranges,
//! offsets and steps in milliseconds).

use axum::response::Response;
use promql_parser::parser::{
    AtModifier, BinaryExpr, Expr, LabelModifier, Offset, VectorMatchCardinality, VectorSelector,
};
use serde_json::{json, Value};

use super::params::Params;
use super::*;

pub(super) async fn parse_query(p: Params) -> Result<Response, ApiError> {
    let expr = crate::promql::depth::parse_expr(p.get("query"))
        .map_err(|e| ApiError::invalid_param("query", parse_error(&e)))?;
    let body = serde_json::to_vec(&tree(&expr))
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    Ok(success(&body, &[]))
}

fn millis(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
    }
}

/// `timestamp` (ms of a fixed `@`, else null) and `startOrEnd`.
fn at(a: &Option<AtModifier>) -> (Value, Value) {
    match a {
        None => (Value::Null, Value::Null),
        Some(AtModifier::Start) => (Value::Null, "start".into()),
        Some(AtModifier::End) => (Value::Null, "end".into()),
        Some(AtModifier::At(t)) => {
            let ms = match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => millis(d),
                Err(e) => -millis(e.duration()),
            };
            (ms.into(), Value::Null)
        }
    }
}

fn matchers(vs: &VectorSelector) -> Value {
    let mut out: Vec<Value> = vs
        .matchers
        .matchers
        .iter()
        .map(|m| json!({ "name": m.name, "value": m.value, "type": m.op.to_string() }))
        .collect();
    if let Some(name) = &vs.name {
        out.push(json!({ "name": "__name__", "value": name, "type": "=" }));
    }
    out.into()
}

fn labels(l: Option<&promql_parser::label::Labels>) -> Value {
    l.map(|l| l.labels.clone()).unwrap_or_default().into()
}

fn is_vector(e: &Expr) -> bool {
    e.value_type() == promql_parser::parser::value::ValueType::Vector
}

/// Vector matching of a binary expression: null unless both sides are
/// instant vectors; set operators match many to many.
fn matching(b: &BinaryExpr) -> Value {
    if !is_vector(&b.lhs) || !is_vector(&b.rhs) {
        return Value::Null;
    }
    let (card, include) = match b.modifier.as_ref().map(|m| &m.card) {
        _ if b.op.is_set_operator() => ("many-to-many", None),
        Some(VectorMatchCardinality::ManyToOne(l)) => ("many-to-one", Some(l)),
        Some(VectorMatchCardinality::OneToMany(l)) => ("one-to-many", Some(l)),
        Some(VectorMatchCardinality::ManyToMany) => ("many-to-many", None),
        Some(VectorMatchCardinality::OneToOne) | None => ("one-to-one", None),
    };
    let m = b.modifier.as_ref().and_then(|m| m.matching.as_ref());
    json!({
        "card": card,
        "labels": labels(m.map(LabelModifier::labels)),
        "on": m.is_some_and(LabelModifier::is_include),
        "include": labels(include),
    })
}

fn number(v: f64) -> String {
    let mut out = Vec::new();
    json::write_float_plain(&mut out, v);
    String::from_utf8_lossy(&out).into_owned()
}

fn tree(e: &Expr) -> Value {
    match e {
        Expr::Aggregate(a) => {
            let (grouping, without) = match &a.modifier {
                None => (labels(None), false),
                Some(m) => (labels(Some(m.labels())), !m.is_include()),
            };
            json!({
                "type": "aggregation",
                "op": a.op.to_string(),
                "expr": tree(&a.expr),
                "param": a.param.as_deref().map_or(Value::Null, tree),
                "grouping": grouping,
                "without": without,
            })
        }
        Expr::Binary(b) => json!({
            "type": "binaryExpr",
            "op": b.op.to_string(),
            "lhs": tree(&b.lhs),
            "rhs": tree(&b.rhs),
            "matching": matching(b),
            "bool": b.modifier.as_ref().is_some_and(|m| m.return_bool),
        }),
        Expr::Call(c) => json!({
            "type": "call",
            "func": {
                "name": c.func.name,
                "argTypes": c.func.arg_types.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
                "variadic": c.func.variadic,
                "returnType": c.func.return_type.to_string(),
            },
            "args": c.args.args.iter().map(|a| tree(a)).collect::<Vec<_>>(),
        }),
        Expr::MatrixSelector(m) => {
            let (timestamp, start_or_end) = at(&m.vs.at);
            json!({
                "type": "matrixSelector",
                "name": m.vs.name.clone().unwrap_or_default(),
                "range": millis(m.range),
                "offset": offset_ms(&m.vs.offset),
                "matchers": matchers(&m.vs),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::Subquery(s) => {
            let (timestamp, start_or_end) = at(&s.at);
            json!({
                "type": "subquery",
                "expr": tree(&s.expr),
                "range": millis(s.range),
                "offset": offset_ms(&s.offset),
                "step": s.step.map_or(0, millis),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::NumberLiteral(n) => json!({ "type": "numberLiteral", "val": number(n.val) }),
        Expr::Paren(p) => json!({ "type": "parenExpr", "expr": tree(&p.expr) }),
        Expr::StringLiteral(s) => json!({ "type": "stringLiteral", "val": s.val }),
        Expr::Unary(u) => json!({
            "type": "unaryExpr",
            "op": "-",
            "expr": tree(&u.expr),
        }),
        Expr::VectorSelector(vs) => {
            let (timestamp, start_or_end) = at(&vs.at);
            json!({
                "type": "vectorSelector",
                "name": vs.name.clone().unwrap_or_default(),
                "offset": offset_ms(&vs.offset),
                "matchers": matchers(vs),
                "timestamp": timestamp,
                "startOrEnd": start_or_end,
            })
        }
        Expr::Extension(_) => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(q: &str) -> Value {
        tree(&crate::promql::depth::parse_expr(q).unwrap())
    }

    #[test]
    fn trees_have_prometheus_shape() {
        let t = parse(
            r#"sum by (job) (rate(x{a=~"b"}[5m] offset 1m)) / on(job) group_left(team) y @ 1700000000"#,
        );
        assert_eq!(t["type"], "binaryExpr");
        assert_eq!(t["op"], "/");
        assert_eq!(
            t["matching"],
            json!({"card": "many-to-one", "labels": ["job"], "on": true, "include": ["team"]})
        );
        assert_eq!(t["bool"], false);
        let agg = &t["lhs"];
        assert_eq!(agg["op"], "sum");
        assert_eq!(agg["grouping"], json!(["job"]));
        assert_eq!(agg["without"], false);
        assert_eq!(agg["param"], Value::Null);
        let call = &agg["expr"];
        assert_eq!(call["func"]["name"], "rate");
        assert_eq!(call["func"]["argTypes"], json!(["matrix"]));
        assert_eq!(call["func"]["returnType"], "vector");
        let m = &call["args"][0];
        assert_eq!(m["type"], "matrixSelector");
        assert_eq!(
            (m["range"].clone(), m["offset"].clone()),
            (json!(300_000), json!(60_000))
        );
        assert_eq!(
            m["matchers"],
            json!([
                {"name": "a", "value": "b", "type": "=~"},
                {"name": "__name__", "value": "x", "type": "="}
            ])
        );
        assert_eq!(t["rhs"]["timestamp"], json!(1_700_000_000_000i64));
        assert_eq!(t["rhs"]["startOrEnd"], Value::Null);
    }

    #[test]
    fn scalars_sets_and_subqueries() {
        assert_eq!(parse("1 + 2")["matching"], Value::Null);
        assert_eq!(parse("a and b")["matching"]["card"], "many-to-many");
        assert_eq!(parse("a > bool b")["bool"], true);
        assert_eq!(parse("a + b")["matching"]["on"], false);
        let s = parse("max_over_time(x[1h:5m] @ end())");
        let sub = &s["args"][0];
        assert_eq!(sub["type"], "subquery");
        assert_eq!(
            (sub["range"].clone(), sub["step"].clone()),
            (json!(3_600_000), json!(300_000))
        );
        assert_eq!(sub["startOrEnd"], "end");
        assert_eq!(parse("0.5")["val"], "0.5");
        assert_eq!(parse("\"s\"")["type"], "stringLiteral");
        assert_eq!(parse("-x")["op"], "-");
        let t = parse("topk without (instance) (3, x)");
        assert_eq!(t["param"]["val"], "3");
        assert_eq!(t["without"], true);
        assert_eq!(parse("x offset -5m")["offset"], json!(-300_000));
    }
}
