//! Unit tests of the number service's helpers.

use super::*;

#[test]
fn area_codes_are_north_american_only() {
    assert_eq!(area_code_of("+12125550100").as_deref(), Some("212"));
    assert_eq!(area_code_of("+442079460958"), None);
    assert_eq!(area_code_of("+1212555"), None);
}

#[test]
fn profile_ids_are_required_and_bounded() {
    assert!(profile_id(None).is_err());
    assert!(profile_id(Some("  ")).is_err());
    assert!(profile_id(Some(&"p".repeat(201))).is_err());
    assert_eq!(profile_id(Some(" acme ")).unwrap(), "acme");
}
