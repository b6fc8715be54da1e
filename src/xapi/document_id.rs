//! Document ids (`stateId`, `profileId`) as LRS databases compare them.
//!
//! An LRS stores documents in SQL tables whose collations may be case-insensitive (MySQL's
//! `_ci`, SQL Server's default), accent-insensitive (`_ai`, ICU), pad trailing spaces (`PAD
//! SPACE`), or compare Unicode compatibility forms as equal. A reserved id refused only in its
//! exact spelling could then be written as `lms.launchdata` or `LMS.LaunchData ` and land on
//! the LMS's document. [`same_document`] says whether two ids may be one document under any of
//! these collations; it errs towards "the same", as a check for reserved ids must.

use unicode_normalization::char::is_combining_mark;
use unicode_normalization::UnicodeNormalization;

/// Whether `id` may name the same stored document as `reserved` under some LRS's collation.
pub fn same_document(id: &str, reserved: &str) -> bool {
    id == reserved || collation_key(id) == collation_key(reserved)
}

/// The most forgiving comparison form: compatibility-decomposed (NFKD: full-width and other
/// compatibility forms become their plain letters), without combining marks (accents) and
/// default-ignorable characters (zero-width and format characters), lower-cased, and trimmed of
/// white space and control characters at both ends.
pub fn collation_key(id: &str) -> String {
    let folded: String = id
        .nfkd()
        .filter(|c| !is_combining_mark(*c) && !is_default_ignorable(*c))
        .flat_map(char::to_lowercase)
        .collect();
    folded.trim_matches(|c: char| c.is_whitespace() || c.is_control()).to_owned()
}

/// Unicode's Default_Ignorable_Code_Point ranges (DerivedCoreProperties.txt), which ICU
/// collations skip.
fn is_default_ignorable(c: char) -> bool {
    matches!(
        c as u32,
        0x00AD
            | 0x034F
            | 0x061C
            | 0x115F..=0x1160
            | 0x17B4..=0x17B5
            | 0x180B..=0x180F
            | 0x200B..=0x200F
            | 0x202A..=0x202E
            | 0x2060..=0x206F
            | 0x3164
            | 0xFE00..=0xFE0F
            | 0xFEFF
            | 0xFFA0
            | 0xFFF0..=0xFFF8
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0000..=0xE0FFF
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LAUNCH_DATA: &str = "LMS.LaunchData";

    #[test]
    fn variants_a_collation_may_store_as_the_reserved_id() {
        let table = [
            ("exact", "LMS.LaunchData"),
            ("lower_case", "lms.launchdata"),
            ("upper_case", "LMS.LAUNCHDATA"),
            ("trailing_space_pad_space_collation", "LMS.LaunchData "),
            ("leading_space", " LMS.LaunchData"),
            ("trailing_tab", "LMS.LaunchData\t"),
            ("trailing_nul", "LMS.LaunchData\u{0}"),
            ("full_width_letters_nfkc", "\u{FF2C}\u{FF2D}\u{FF33}.LaunchData"),
            ("accent_insensitive_collation", "LMS.Launch\u{0044}\u{0301}ata"),
            ("precomposed_accent", "LMS.L\u{00E1}unchData"),
            ("zero_width_space_inside", "LMS.Launch\u{200B}Data"),
            ("soft_hyphen_inside", "LMS.Launch\u{00AD}Data"),
            ("byte_order_mark_prefix", "\u{FEFF}LMS.LaunchData"),
            ("non_breaking_space_suffix", "LMS.LaunchData\u{00A0}"),
            ("ideographic_space_suffix", "LMS.LaunchData\u{3000}"),
        ];
        for (rule, id) in table {
            assert!(same_document(id, LAUNCH_DATA), "{rule}");
        }
    }

    #[test]
    fn other_ids_stay_other_documents() {
        for (rule, id) in [
            ("another_id", "bookmark"),
            ("prefix", "LMS.LaunchData2"),
            ("inner_space", "LMS.Launch Data"),
            ("other_punctuation", "LMS-LaunchData"),
            ("empty", ""),
        ] {
            assert!(!same_document(id, LAUNCH_DATA), "{rule}");
        }
    }
}
