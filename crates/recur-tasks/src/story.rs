//! The built-in text of the character model: English-like stories generated in code from a seed by a small
//! grammar, so that any amount of text is available without a file and the held-out part is text the model has
//! never seen.
//!
//! The grammar is chosen to give a recurrent model structure that reaches beyond the last few characters:
//!
//! - **Chapters are numbered** in order (`Chapter 1`, `Chapter 2`, …), and each has a **cast** of three people
//!   introduced in its first sentence; the rest of the chapter names only them.
//! - **Pronouns agree** with the person last named: `Ada … She`, `Tomas … He`.
//! - **Verbs agree with their subject** across whatever stands between: `the boats of Ada are`, `the lamp that
//!   the children mend is`, `Ada and Tomas walk`.
//! - **Quotes and brackets close**: speech in `"…"` may hold two sentences, and a bracketed remark may hold
//!   another (`(which are red (or so Ada says))`).
//! - **Lists are counted**: `Ada has three lamps:` is followed by exactly three numbered lines.
//!
//! Only ASCII characters are used, so the text's length in characters is its length in bytes.

use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Names and whether the person is referred to as "she".
const PEOPLE: [(&str, bool); 24] = [
    ("Ada", true),
    ("Tomas", false),
    ("Mira", true),
    ("Oskar", false),
    ("Lena", true),
    ("Pavel", false),
    ("Greta", true),
    ("Hugo", false),
    ("Ines", true),
    ("Jonas", false),
    ("Clara", true),
    ("Felix", false),
    ("Nora", true),
    ("Emil", false),
    ("Rosa", true),
    ("Anton", false),
    ("Vera", true),
    ("Milo", false),
    ("Hanna", true),
    ("Karl", false),
    ("Lucia", true),
    ("Bruno", false),
    ("Selma", true),
    ("Otto", false),
];

/// What the people of a cast do.
const ROLES: [&str; 12] = [
    "keeper", "miller", "baker", "sailor", "teacher", "fisher", "weaver", "painter", "doctor", "farmer", "smith",
    "poet",
];

/// Nouns, singular and plural.
const NOUNS: [(&str, &str); 24] = [
    ("boat", "boats"),
    ("bird", "birds"),
    ("house", "houses"),
    ("child", "children"),
    ("mouse", "mice"),
    ("lamp", "lamps"),
    ("bridge", "bridges"),
    ("letter", "letters"),
    ("key", "keys"),
    ("horse", "horses"),
    ("bell", "bells"),
    ("tree", "trees"),
    ("window", "windows"),
    ("road", "roads"),
    ("cloud", "clouds"),
    ("story", "stories"),
    ("box", "boxes"),
    ("wolf", "wolves"),
    ("man", "men"),
    ("woman", "women"),
    ("stone", "stones"),
    ("candle", "candles"),
    ("ship", "ships"),
    ("song", "songs"),
];

const ADJECTIVES: [&str; 16] = [
    "old", "small", "red", "quiet", "bright", "heavy", "green", "cold", "strange", "happy", "broken", "tall", "grey",
    "warm", "lost", "new",
];

/// Transitive verbs, with a singular and a plural subject.
const VERBS: [(&str, &str); 14] = [
    ("sees", "see"),
    ("finds", "find"),
    ("carries", "carry"),
    ("watches", "watch"),
    ("mends", "mend"),
    ("paints", "paint"),
    ("counts", "count"),
    ("remembers", "remember"),
    ("follows", "follow"),
    ("opens", "open"),
    ("keeps", "keep"),
    ("loses", "lose"),
    ("sells", "sell"),
    ("hides", "hide"),
];

const PLACES: [&str; 10] = [
    "the harbour",
    "the mill",
    "the market",
    "the hill",
    "the river",
    "the bridge",
    "the school",
    "the forest",
    "the tower",
    "the square",
];

/// Counts that a list announces in words, from two.
const COUNTS: [&str; 4] = ["two", "three", "four", "five"];

/// The seed of [`CharCorpus::builtin`](crate::CharCorpus::builtin)'s text.
pub const BUILTIN_SEED: u64 = 1;

/// The length of [`CharCorpus::builtin`](crate::CharCorpus::builtin)'s text in characters: about 1 MB, enough
/// for the `charlm` defaults (a 2-layer LSTM of 256) to learn the language rather than memorise the text.
pub const BUILTIN_CHARS: usize = 1_000_000;

/// Exactly `chars` characters of stories generated from `seed` (see the [module documentation](self)); the same
/// seed always gives the same text, and a shorter text is the beginning of a longer one.
pub fn story_text(seed: u64, chars: usize) -> String {
    let mut w = Writer {
        rng: ChaCha8Rng::seed_from_u64(seed),
        out: String::with_capacity(chars + 4096),
        cast: vec![],
        last: 0,
    };
    let mut chapter = 1;
    while w.out.len() < chars {
        w.chapter(chapter);
        chapter += 1;
    }
    w.out.truncate(chars);
    w.out
}

/// A person of the current chapter's cast.
#[derive(Clone, Copy)]
struct Person {
    name: &'static str,
    she: bool,
}

/// The generator's state: the text so far, the chapter's cast, and who was named last (for pronouns).
struct Writer {
    rng: ChaCha8Rng,
    out: String,
    cast: Vec<Person>,
    last: usize,
}

impl Writer {
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        *items.choose(&mut self.rng).expect("non-empty")
    }

    /// A person of the cast, who becomes the one a pronoun refers to.
    fn person(&mut self) -> &'static str {
        self.last = self.rng.random_range(0..self.cast.len());
        self.cast[self.last].name
    }

    fn chapter(&mut self, number: usize) {
        let mut people = PEOPLE.to_vec();
        let mut cast = Vec::new();
        for _ in 0..3 {
            let (name, she) = people.swap_remove(self.rng.random_range(0..people.len()));
            cast.push(Person { name, she });
        }
        self.cast = cast;
        let roles: Vec<&str> = ROLES.choose_multiple(&mut self.rng, 3).copied().collect();
        let [a, b, c] = [self.cast[0].name, self.cast[1].name, self.cast[2].name];
        self.out += &format!(
            "Chapter {number}\n\nThis is a story about {a}, a {}, {b}, a {}, and {c}, a {}.",
            roles[0], roles[1], roles[2]
        );
        self.last = 2;
        self.out.push(' ');
        for _ in 0..self.rng.random_range(4..9) {
            for _ in 0..self.rng.random_range(3..7) {
                self.sentence();
                self.out.push(' ');
            }
            self.out.pop();
            self.out += "\n\n";
        }
    }

    fn sentence(&mut self) {
        match self.rng.random_range(0..10) {
            0..5 => {
                let s = self.statement();
                self.out += &s;
            }
            5 | 6 => self.speech(),
            7 => self.list(),
            _ => {
                let s = self.statement();
                let name = self.person();
                self.out += &format!("{}, says {name}.", &s[..s.len() - 1]);
            }
        }
    }

    /// A noun phrase: its text and whether it is plural.
    fn noun_phrase(&mut self) -> (String, bool) {
        let plural = self.rng.random_bool(0.5);
        let (one, many) = self.pick(&NOUNS);
        let noun = if plural { many } else { one };
        let adjective = if self.rng.random_bool(0.4) { format!("{} ", self.pick(&ADJECTIVES)) } else { String::new() };
        (format!("the {adjective}{noun}"), plural)
    }

    /// A sentence's subject, capitalised, and whether it is plural.
    fn subject(&mut self) -> (String, bool) {
        match self.rng.random_range(0..8) {
            0 | 1 => (self.person().to_string(), false),
            2 => {
                let pronoun = if self.cast[self.last].she { "She" } else { "He" };
                (pronoun.to_string(), false)
            }
            3 => {
                let a = self.person();
                let b = loop {
                    let b = self.person();
                    if b != a {
                        break b;
                    }
                };
                (format!("{a} and {b}"), true)
            }
            _ => {
                // A noun with something between it and its verb, which must still agree with the noun.
                let (head, plural) = self.noun_phrase();
                let tail = match self.rng.random_range(0..4) {
                    0 => format!(" of {}", self.person()),
                    1 => {
                        let (other, other_plural) = self.noun_phrase();
                        let verb = self.pick(&VERBS);
                        format!(" that {other} {}", if other_plural { verb.1 } else { verb.0 })
                    }
                    2 => format!(" near {}", self.noun_phrase().0),
                    _ => String::new(),
                };
                (capitalise(&format!("{head}{tail}")), plural)
            }
        }
    }

    /// A predicate agreeing with a singular or plural subject.
    fn predicate(&mut self, plural: bool) -> String {
        match self.rng.random_range(0..4) {
            0 => format!("{} {}", if plural { "are" } else { "is" }, self.pick(&ADJECTIVES)),
            1 => format!("{} to {}", if plural { "walk" } else { "walks" }, self.pick(&PLACES)),
            _ => {
                let verb = self.pick(&VERBS);
                let (object, object_plural) = self.noun_phrase();
                format!("{} {object}{}", if plural { verb.1 } else { verb.0 }, self.remark(object_plural, 0))
            }
        }
    }

    /// Sometimes a bracketed remark about a thing, agreeing with it, and sometimes one nested inside it.
    fn remark(&mut self, plural: bool, depth: usize) -> String {
        if depth > 1 || !self.rng.random_bool(if depth == 0 { 0.25 } else { 0.4 }) {
            return String::new();
        }
        if depth == 1 {
            return format!(" (or so {} says)", self.person());
        }
        let be = if plural { "are" } else { "is" };
        let adjective = self.pick(&ADJECTIVES);
        format!(" (which {be} {adjective}{})", self.remark(plural, depth + 1))
    }

    /// A statement with its full stop.
    fn statement(&mut self) -> String {
        let (subject, plural) = self.subject();
        format!("{subject} {}.", self.predicate(plural))
    }

    /// Speech in quotes of one or two sentences, the speaker named before or after.
    fn speech(&mut self) {
        let mut quote = self.first_person();
        if self.rng.random_bool(0.4) {
            quote = format!("{quote} {}", self.statement());
        }
        if self.rng.random_bool(0.5) {
            let name = self.person();
            self.out += &format!("{name} says, \"{quote}\"");
        } else {
            let name = self.person();
            self.out += &format!("\"{},\" says {name}.", &quote[..quote.len() - 1]);
        }
    }

    /// A statement by the speaker: "I" takes the plural verb but "am", "we" the plural.
    fn first_person(&mut self) -> String {
        let we = self.rng.random_bool(0.3);
        if self.rng.random_bool(0.4) {
            let adjective = self.pick(&ADJECTIVES);
            return if we { format!("We are {adjective}.") } else { format!("I am {adjective}.") };
        }
        let predicate = self.predicate(true);
        match predicate.strip_prefix("are ") {
            Some(rest) if !we => format!("I am {rest}."),
            _ => format!("{} {predicate}.", if we { "We" } else { "I" }),
        }
    }

    /// A count announced in words, then exactly that many numbered lines.
    fn list(&mut self) {
        let count = self.rng.random_range(2..=COUNTS.len() + 1);
        let (one, many) = self.pick(&NOUNS);
        let name = self.person();
        self.out += &format!("{name} has {} {many}:", COUNTS[count - 2]);
        for i in 1..=count {
            let adjective = self.pick(&ADJECTIVES);
            self.out += &format!("\n{i}. {} {adjective} {one}", article(adjective));
        }
        self.out += "\nThat is all.";
    }
}

/// "an" before a vowel, else "a".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) { "an" } else { "a" }
}

/// `text` with its first letter in upper case.
fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stories_are_deterministic_prefixes_of_each_other() {
        let long = story_text(7, 20_000);
        assert_eq!(long.len(), 20_000);
        assert_eq!(long, story_text(7, 20_000));
        assert_eq!(&long[..5000], story_text(7, 5000));
        assert_ne!(long, story_text(8, 20_000));
        assert!(long.starts_with("Chapter 1\n\nThis is a story about "), "{}", &long[..80]);
        assert!(long.contains("Chapter 2\n\n"));
        assert!(long.is_ascii());
    }

    #[test]
    fn quotes_and_brackets_close_and_lists_match_their_counts() {
        let text = story_text(3, 200_000);
        let whole = &text[..text.rfind("\n\nChapter").unwrap()];
        for paragraph in whole.split("\n\n") {
            assert_eq!(paragraph.matches('"').count() % 2, 0, "{paragraph}");
            let mut depth = 0i32;
            for c in paragraph.chars() {
                depth += match c {
                    '(' => 1,
                    ')' => -1,
                    _ => 0,
                };
                assert!((0..=2).contains(&depth), "{paragraph}");
            }
            assert_eq!(depth, 0, "{paragraph}");
        }
        let lists: Vec<&str> = whole.split(" has ").skip(1).filter(|s| s.contains(":\n1. ")).collect();
        assert!(lists.len() > 50);
        for list in lists {
            let word = list.split(' ').next().unwrap();
            let count = COUNTS.iter().position(|&c| c == word).unwrap() + 2;
            let lines = list[..list.find("\nThat is all.").unwrap()].lines().count() - 1;
            assert_eq!(lines, count, "{list}");
        }
    }

    #[test]
    fn the_builtin_text_is_generated_fast() {
        let started = std::time::Instant::now();
        let text = story_text(BUILTIN_SEED, BUILTIN_CHARS);
        assert_eq!(text.len(), BUILTIN_CHARS);
        // Generous for an unoptimised build; an optimised one takes a small fraction of a second.
        assert!(started.elapsed().as_secs_f64() < 5.0, "{:?}", started.elapsed());
    }
}
