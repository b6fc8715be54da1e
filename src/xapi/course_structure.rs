//! cmi5 course structures (`cmi5.xml`, cmi5 §13): the ids of the course, its blocks and AUs.

use std::fmt;

use super::iri::is_absolute_iri;

/// The course structure namespace (cmi5 §13.1).
pub const NAMESPACE: &str = "https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd";

/// The activity ids a course structure defines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CourseStructure {
    pub course_id: String,
    /// The course id, then every block and AU id, in document order.
    pub activity_ids: Vec<String>,
}

/// Why a document is not a usable course structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CourseStructureError {
    Xml(String),
    /// The root is not `courseStructure` in the cmi5 namespace.
    NotACourseStructure,
    /// There must be exactly one `course` element.
    CourseCount(usize),
    /// A course, block or AU without an absolute IRI as `id`.
    BadId(String),
}

impl fmt::Display for CourseStructureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CourseStructureError::Xml(e) => write!(f, "not well-formed XML: {e}"),
            CourseStructureError::NotACourseStructure => {
                write!(f, "the root element is not courseStructure in namespace {NAMESPACE}")
            }
            CourseStructureError::CourseCount(n) => write!(f, "{n} course elements; exactly one is required"),
            CourseStructureError::BadId(element) => write!(f, "a {element} element has no absolute IRI as id"),
        }
    }
}

/// Parse a cmi5 course structure. DTDs are refused by the parser (no entity expansion).
pub fn parse(xml: &str) -> Result<CourseStructure, CourseStructureError> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| CourseStructureError::Xml(e.to_string()))?;
    let root = doc.root_element();
    if root.tag_name().name() != "courseStructure" || root.tag_name().namespace() != Some(NAMESPACE) {
        return Err(CourseStructureError::NotACourseStructure);
    }
    let mut course_id = None;
    let mut courses = 0;
    let mut activity_ids = Vec::new();
    for node in root.descendants().filter(|n| n.is_element() && n.tag_name().namespace() == Some(NAMESPACE)) {
        let element = node.tag_name().name();
        if !matches!(element, "course" | "block" | "au") {
            continue;
        }
        let id = node.attribute("id").filter(|id| is_absolute_iri(id));
        let id = id.ok_or_else(|| CourseStructureError::BadId(element.to_owned()))?.to_owned();
        if element == "course" {
            courses += 1;
            course_id = Some(id.clone());
        }
        activity_ids.push(id);
    }
    match (courses, course_id) {
        (1, Some(course_id)) => Ok(CourseStructure { course_id, activity_ids }),
        (n, _) => Err(CourseStructureError::CourseCount(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COURSE: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<courseStructure xmlns="https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd">
  <course id="https://pub.example/course/1"><title><langstring lang="en-US">C</langstring></title>
    <description><langstring lang="en-US">D</langstring></description></course>
  <au id="https://pub.example/au/intro"><title><langstring lang="en-US">Intro</langstring></title>
    <description><langstring lang="en-US">I</langstring></description><url>intro.html</url></au>
  <block id="https://pub.example/block/1"><title><langstring lang="en-US">B</langstring></title>
    <description><langstring lang="en-US">B</langstring></description>
    <au id="https://pub.example/au/quiz" moveOn="Passed"><title><langstring lang="en-US">Q</langstring></title>
      <description><langstring lang="en-US">Q</langstring></description><url>quiz.html</url></au>
  </block>
</courseStructure>"#;

    #[test]
    fn reads_course_blocks_and_aus() {
        let s = parse(COURSE).unwrap();
        assert_eq!(s.course_id, "https://pub.example/course/1");
        assert_eq!(
            s.activity_ids,
            ["course/1", "au/intro", "block/1", "au/quiz"].map(|p| format!("https://pub.example/{}", p.to_owned()))
        );
    }

    #[test]
    fn refusal_rules() {
        assert!(matches!(parse("<courseStructure"), Err(CourseStructureError::Xml(_))));
        assert_eq!(
            parse(&COURSE.replace("CourseStructure.xsd", "Other.xsd")),
            Err(CourseStructureError::NotACourseStructure)
        );
        assert_eq!(
            parse(&COURSE.replace(r#"id="https://pub.example/au/quiz""#, r#"id="quiz""#)),
            Err(CourseStructureError::BadId("au".into()))
        );
        let two = COURSE.replace(
            "<au id=\"https://pub.example/au/intro\"",
            "<course id=\"https://x/c2\"/><au id=\"https://pub.example/au/intro\"",
        );
        assert_eq!(parse(&two), Err(CourseStructureError::CourseCount(2)));
        let dtd = "<?xml version=\"1.0\"?><!DOCTYPE x [<!ENTITY a \"aaaa\">]><courseStructure xmlns=\"https://w3id.org/xapi/profiles/cmi5/v1/CourseStructure.xsd\">&a;</courseStructure>";
        assert!(parse(dtd).is_err(), "entities are not expanded into a course");
    }
}
