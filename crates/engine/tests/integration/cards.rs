//! Character Cards: the sample cards in `tests/cards/` (written for these tests, malformed
//! ones among them) import as personas that pass the persona check, report what they leave
//! out, and shipped personas survive an export and import unchanged.

use std::path::{Path, PathBuf};

use crossfire_engine::card::{self, CardError};
use crossfire_engine::persona::{Persona, PersonaKind};

fn sample(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cards")
            .join(name),
    )
    .unwrap()
}

/// The imported TOML passes the same check as a persona file on disk.
fn passes_check(imported: &card::Imported) -> Persona {
    let path = PathBuf::from(format!("{}.toml", imported.persona.id));
    Persona::parse(&path, imported.toml.as_bytes(), Some(&imported.persona.id))
        .unwrap_or_else(|p| panic!("{p:?}\n{}", imported.toml))
}

fn reported(imported: &card::Imported, needle: &str) -> bool {
    imported.report.iter().any(|line| line.contains(needle))
}

#[test]
fn a_v2_json_card_maps_onto_a_persona_and_reports_what_had_no_home() {
    let imported = card::import(&sample("v2.json"), None).unwrap();
    assert_eq!(imported.spec, "chara_card_v2");
    let p = passes_check(&imported);
    assert_eq!(p.id, "captain-ada-reyes");
    assert_eq!(p.name, "Captain Ada Reyes");
    assert_eq!(p.kind, PersonaKind::Archetype);
    assert_eq!(
        p.role,
        "A retired naval officer who commanded a frigate in the Pacific."
    );
    assert!(p.bio.contains("writes on sea power"));
    assert_eq!(p.worldview.len(), 3, "{:?}", p.worldview);
    assert_eq!(p.tags, ["navy", "strategy"]);
    assert_eq!(
        p.sample_lines,
        [
            "Sit down. You look like someone with a question about ships.",
            "Another round?",
            "Fuel, spares and honest officers. In that order."
        ]
    );
    for field in [
        "`scenario`",
        "`system_prompt`",
        "`post_history_instructions`",
        "`creator_notes`",
        "`extensions.talkativeness`",
        "`extensions.depth_prompt`",
        "`kind`",
    ] {
        assert!(
            reported(&imported, field),
            "{field} in {:?}",
            imported.report
        );
    }
    // Instructions to a model stay out of the persona altogether.
    assert!(!imported.toml.contains("Ignore all previous instructions"));
    assert!(!imported.toml.contains("pirate"));
}

#[test]
fn v3_cards_import_from_json_png_and_charx_alike() {
    let json = card::import(&sample("v3.json"), None).unwrap();
    assert_eq!(json.spec, "chara_card_v3");
    let p = passes_check(&json);
    assert_eq!(p.id, "professor-ilse-varga");
    assert_eq!(p.role, "An economic historian of the interwar years.");
    assert!(
        reported(&json, "`character_book` (1 entries)"),
        "{:?}",
        json.report
    );
    assert!(reported(&json, "`assets`"));
    assert!(reported(&json, "`nickname`"));
    // The PNG holds a V2 card in `chara` and a V3 in `ccv3`, after the image data: V3 wins.
    let png = card::import(&sample("v3-and-v2.png"), None).unwrap();
    assert_eq!(png.spec, "chara_card_v3");
    assert_eq!(png.persona, json.persona);
    let v2_png = card::import(&sample("v2.png"), None).unwrap();
    assert_eq!(v2_png.persona.name, "Captain Ada Reyes");
    let charx = card::import(&sample("v3.charx"), Some("ilse")).unwrap();
    assert_eq!(charx.persona.id, "ilse");
    assert_eq!(charx.persona.name, json.persona.name);
    passes_check(&charx);
}

#[test]
fn malformed_and_v1_cards_give_what_can_be_understood() {
    let imported = card::import(&sample("malformed-v2.json"), None).unwrap();
    let p = passes_check(&imported);
    assert_eq!(p.name, "Old Tom");
    assert_eq!(
        p.bio,
        "A lighthouse keeper.\nHe has kept the light for forty years."
    );
    assert_eq!(p.sample_lines, ["Storm's coming.", "Mind the rocks."]);
    assert!(p.tags.is_empty());
    for note in [
        "`description` is a list",
        "`alternate_greetings` is a string",
        "`character_book.entries` is an object",
        "`character_book` (2 entries)",
        "`mes_example`: no `{{char}}:` lines",
        "`personality` is empty",
        "`creator_notes` left out",
    ] {
        assert!(reported(&imported, note), "{note} in {:?}", imported.report);
    }
    let v1 = card::import(&sample("v1.json"), None).unwrap();
    assert_eq!(v1.spec, "chara_card_v1");
    assert_eq!(passes_check(&v1).name, "Mara");
}

#[test]
fn what_is_not_a_card_is_a_clear_error() {
    let cases: [(&[u8], &str); 7] = [
        (b"not json", "its JSON does not parse"),
        (b"\xff\xfe binary", "neither JSON, PNG nor CHARX"),
        (b"{\"spec\": \"chara_card_v2\"}", "no `data`"),
        (
            b"{\"spec\": \"chara_card_v2\", \"data\": {\"name\": \"\"}}",
            "",
        ),
        (
            b"\x89PNG\r\n\x1a\n\0\0\0\0IEND\xaeB`\x82",
            "no `chara` or `ccv3`",
        ),
        (&sample("no-card.charx"), "no card.json"),
        (b"PK\x03\x04 truncated", "cannot be read"),
    ];
    for (bytes, message) in cases {
        match card::import(bytes, None) {
            Err(CardError::NoName) => assert_eq!(message, ""),
            Err(e) => assert!(e.to_string().contains(message), "{e} lacks {message}"),
            Ok(i) => panic!("{message}: imported {:?}", i.persona),
        }
    }
    assert!(matches!(
        card::import(&vec![b' '; card::MAX_CARD_BYTES + 1], None),
        Err(CardError::TooLarge(_))
    ));
}

#[test]
fn shipped_personas_round_trip_through_json_and_png_cards_unchanged() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../personas");
    let (personas, problems) = Persona::check_dir(&dir).unwrap();
    assert!(problems.is_empty());
    for original in personas {
        let json = card::export(&original).to_string();
        let back = card::import(json.as_bytes(), None).unwrap();
        let mut expected = original.clone();
        expected.version = back.persona.version.clone();
        assert_eq!(back.persona, expected, "{} through JSON", original.id);
        assert!(back.report.is_empty(), "{:?}", back.report);
        let png = card::export_png(&original).unwrap();
        let back = card::import(&png, None).unwrap();
        assert_eq!(back.spec, "chara_card_v3");
        assert_eq!(back.persona, expected, "{} through PNG", original.id);
    }
}
