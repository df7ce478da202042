//! The status page: one self-contained HTML document (no CDN, no fonts,
//! nothing to build), with the data it opens with embedded, so that it
//! shows something without script round trips; its script then asks
//! `/status` every two seconds.

use super::report::Report;

const PAGE: &str = include_str!("page.html");

/// The page with `report` in it.
pub fn page(report: &Report) -> String {
    let json = serde_json::to_string(report).expect("a report serializes");
    // Inside a <script> element only `</` (and `<!--`) could end or upset
    // it; JSON allows `<` escaped.
    PAGE.replace("/*DATA*/", &json.replace('<', "\\u003c"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commit::LogState;

    #[test]
    fn the_data_cannot_close_its_script_element() {
        let mut report = Report::of_log(&LogState::default(), &[]);
        report.generated_at = "</script><script>alert(1)</script>".into();
        let html = page(&report);
        assert_eq!(html.matches("</script>").count(), 2, "only the page's own");
        let embedded = html
            .split("<script id=\"data\" type=\"application/json\">")
            .nth(1)
            .and_then(|rest| rest.split("</script>").next())
            .expect("the embedded data");
        let back: Report = serde_json::from_str(embedded).expect("still JSON");
        assert_eq!(back, report);
        assert!(
            !html.contains("http://") && !html.contains("https://"),
            "nothing fetched from elsewhere"
        );
    }
}
