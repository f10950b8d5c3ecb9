//! The era check: things a figure speaks of that came after their knowledge horizon, and
//! that the story they were given does not mention. Churchill may discuss the drones a
//! story reports; he did not watch them on his smartphone.

use crate::persona::Persona;

/// Things with the year they came into use, as speeches name them (lower case, whole
/// words; a phrase matches as written).
const INVENTIONS: &[(&str, u32)] = &[
    ("telephone", 1876),
    ("automobile", 1886),
    ("radio", 1895),
    ("airplane", 1903),
    ("aeroplane", 1903),
    ("television", 1927),
    ("televised", 1927),
    ("atomic bomb", 1945),
    ("nuclear weapons", 1945),
    ("computer", 1946),
    ("transistor", 1947),
    ("satellite", 1957),
    ("email", 1971),
    ("e-mail", 1971),
    ("internet", 1983),
    ("laptop", 1983),
    ("online", 1985),
    ("website", 1991),
    ("text message", 1992),
    ("google", 1998),
    ("blog", 1999),
    ("facebook", 2004),
    ("social media", 2004),
    ("podcast", 2004),
    ("youtube", 2005),
    ("twitter", 2006),
    ("tweet", 2006),
    ("smartphone", 2007),
    ("iphone", 2007),
    ("livestream", 2008),
    ("app store", 2008),
    ("selfie", 2013),
];

/// The last year a persona knew: the last four-digit year of its knowledge horizon, else
/// of its dates. `None` for personas with neither (archetypes, the living).
pub fn horizon(persona: &Persona) -> Option<u32> {
    [&persona.knowledge_horizon, &persona.lived]
        .into_iter()
        .flatten()
        .find_map(|text| last_year(text))
}

fn last_year(text: &str) -> Option<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|run| run.len() == 4)
        .filter_map(|run| run.parse().ok())
        .next_back()
}

/// The anachronisms in `speech` for `persona`, each once: what came after its horizon and
/// that `story` (what the figure was told) does not name.
pub fn anachronisms(speech: &str, persona: &Persona, story: &str) -> Vec<&'static str> {
    let Some(horizon) = horizon(persona) else {
        return Vec::new();
    };
    let speech = speech.to_lowercase();
    let story = story.to_lowercase();
    INVENTIONS
        .iter()
        .filter(|(_, year)| *year > horizon)
        .filter(|(thing, _)| names(&speech, thing) && !names(&story, thing))
        .map(|(thing, _)| *thing)
        .collect()
}

/// Whether `text` has `thing` as whole words (a plural `s` allowed).
fn names(text: &str, thing: &str) -> bool {
    text.match_indices(thing).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + thing.len()..]
            .trim_start_matches('s')
            .chars()
            .next();
        !before.is_some_and(char::is_alphanumeric) && !after.is_some_and(char::is_alphanumeric)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn persona(lived: &str, horizon: Option<&str>) -> Persona {
        let mut p: Persona = toml::from_str(
            r#"id = "p"
name = "P"
kind = "historical"
role = "r"
bio = "b"
worldview = ["w"]
voice = "v""#,
        )
        .expect("a persona");
        p.lived = Some(lived.to_string());
        p.knowledge_horizon = horizon.map(str::to_string);
        p
    }

    #[test]
    fn finds_what_came_after_the_horizon_unless_the_story_names_it() {
        let churchill = persona("1874–1965", Some("up to his death in 1965"));
        let speech = "I watched it on my Smartphone, posted online, and heard it on the radio.";
        assert_eq!(
            anachronisms(speech, &churchill, "A story."),
            ["online", "smartphone"]
        );
        assert_eq!(
            anachronisms(speech, &churchill, "Footage spread online."),
            ["smartphone"]
        );
        // Whole words only; a figure of later days may speak of it.
        assert!(anachronisms("the onlineness of it", &churchill, "").is_empty());
        let later = persona("1950–2020", None);
        assert!(anachronisms(speech, &later, "").is_empty());
    }

    #[test]
    fn the_horizon_is_the_last_year_named() {
        assert_eq!(horizon(&persona("1809–1865", None)), Some(1865));
        assert_eq!(
            horizon(&persona("1818–1895", Some("events up to 1890"))),
            Some(1890)
        );
    }
}
