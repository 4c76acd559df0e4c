//! Date-partitioned path templates for the files sink (`year={yyyy}/month={MM}/day={dd}`).
//!
//! A layout is parsed once; [`Layout::path_for`] gives the directory of a row from its
//! event time (UTC). Placeholders: `{yyyy}`, `{MM}`, `{dd}`, `{HH}`; everything else is
//! literal, so users write `ano={yyyy}/mes={MM}/dia={dd}` as they please. A layout stays
//! inside the sink's directory: no absolute paths, no `..`, no empty segments.

use chrono::{DateTime, Datelike, Timelike, Utc};

pub const DEFAULT_LAYOUT: &str = "year={yyyy}/month={MM}/day={dd}";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Year,
    Month,
    Day,
    Hour,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    template: String,
    parts: Vec<Part>,
}

impl Layout {
    pub fn parse(template: &str) -> Result<Layout, String> {
        if template.starts_with('/') || template.split('/').any(|s| s.is_empty() || s == "..") {
            return Err(format!(
                "layout {template:?} must be a relative path without empty or '..' segments"
            ));
        }
        let mut parts = Vec::new();
        let mut rest = template;
        while let Some(open) = rest.find('{') {
            let (literal, after) = rest.split_at(open);
            if !literal.is_empty() {
                parts.push(Part::Literal(literal.to_string()));
            }
            let close = after
                .find('}')
                .ok_or_else(|| format!("layout {template:?} has an unclosed '{{'"))?;
            let token = after.get(1..close).unwrap_or("");
            parts.push(match token {
                "yyyy" => Part::Year,
                "MM" => Part::Month,
                "dd" => Part::Day,
                "HH" => Part::Hour,
                other => {
                    return Err(format!(
                        "layout placeholder {{{other}}} is unknown (use {{yyyy}}, {{MM}}, {{dd}}, {{HH}})"
                    ))
                }
            });
            rest = after.get(close + 1..).unwrap_or("");
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_string()));
        }
        Ok(Layout {
            template: template.to_string(),
            parts,
        })
    }

    pub fn template(&self) -> &str {
        &self.template
    }

    /// The relative directory for an event time; `None` when the time is out of chrono's
    /// range.
    pub fn path_for(&self, event_time_ms: i64) -> Option<String> {
        let t: DateTime<Utc> = DateTime::from_timestamp_millis(event_time_ms)?;
        Some(
            self.parts
                .iter()
                .map(|p| match p {
                    Part::Literal(s) => s.clone(),
                    Part::Year => format!("{:04}", t.year()),
                    Part::Month => format!("{:02}", t.month()),
                    Part::Day => format!("{:02}", t.day()),
                    Part::Hour => format!("{:02}", t.hour()),
                })
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_and_custom_layouts() {
        let t = 1_735_552_800_000; // 2024-12-30T10:00:00Z
        assert_eq!(
            Layout::parse(DEFAULT_LAYOUT).unwrap().path_for(t).unwrap(),
            "year=2024/month=12/day=30"
        );
        assert_eq!(
            Layout::parse("ano={yyyy}/mes={MM}/dia={dd}/h{HH}")
                .unwrap()
                .path_for(t)
                .unwrap(),
            "ano=2024/mes=12/dia=30/h10"
        );
        assert_eq!(Layout::parse("x").unwrap().path_for(i64::MAX), None);
    }

    #[test]
    fn bad_layouts_are_rejected() {
        for bad in ["/abs/{yyyy}", "a/../b", "a//b", "{yyyy", "{week}", ""] {
            assert!(Layout::parse(bad).is_err(), "{bad}");
        }
    }
}
