//! Arabic closed classes: function words (no root) and the irregular stems
//! the templates cannot derive, with every clitic and pronoun they take.
use std::sync::LazyLock;

use super::engine;

/// Function words (pronouns, particles, prepositions, demonstratives, relatives):
/// no root.
const FUNCTION_WORDS: &[&str] = &[
    "في",
    "من",
    "على",
    "إلى",
    "الى",
    "عن",
    "مع",
    "أو",
    "او",
    "ثم",
    "أن",
    "ان",
    "إن",
    "لا",
    "لم",
    "لن",
    "ما",
    "هل",
    "قد",
    "لقد",
    "بل",
    "كل",
    "هذا",
    "هذه",
    "ذلك",
    "تلك",
    "هذان",
    "هؤلاء",
    "أولئك",
    "الذي",
    "التي",
    "الذين",
    "اللذان",
    "اللتان",
    "اللاتي",
    "هو",
    "هي",
    "هم",
    "هن",
    "هما",
    "أنا",
    "انا",
    "نحن",
    "أنت",
    "انت",
    "أنتم",
    "انتم",
    "إذا",
    "اذا",
    "إذ",
    "اذ",
    "لو",
    "لولا",
    "حتى",
    "منذ",
    "عند",
    "لدى",
    "لكن",
    "لكنه",
    "أي",
    "اي",
    "كي",
    "لكي",
    "كما",
    "مما",
    "عما",
    "فيه",
    "فيها",
    "منه",
    "منها",
    "عليه",
    "عليها",
    "إليه",
    "اليه",
    "له",
    "لها",
    "لهم",
    "به",
    "بها",
    "بهم",
    "وهو",
    "وهي",
    "وفي",
    "ومن",
    "وما",
    "ولا",
    "فلا",
    "فإن",
    "وإن",
    "إلا",
    "الا",
    "أما",
    "اما",
    "إما",
    "امام",
    "يا",
    "أيضا",
    "ايضا",
    "سوى",
    "هنا",
    "هناك",
    "ثمة",
    "ليس",
    "عسى",
    "نعم",
    "بلى",
    "كلا",
    "أيها",
    "أيتها",
    "ذا",
    "ذو",
    "ذي",
    "التى",
    "لما",
    "إنما",
    "انما",
    "كذلك",
    "لأن",
    "كأن",
    "بأن",
];

/// Function words also written with و / ف joined (وهذا, فإذا, ولما); not those whose
/// joined form is as often a content word (فهم, وهم, فقد, ولي, فعل).
const JOINED: &[&str] = &[
    "هذا",
    "هذه",
    "ذلك",
    "تلك",
    "هؤلاء",
    "أولئك",
    "كذلك",
    "إذا",
    "اذا",
    "إذ",
    "لما",
    "إنما",
    "انما",
    "لم",
    "لن",
    "ما",
    "لكن",
    "لقد",
    "حتى",
    "هو",
    "هي",
    "أن",
    "إن",
    "ان",
    "أما",
    "لو",
    "لولا",
    "كما",
    "مما",
    "ثم",
    "منذ",
    "عند",
    "أيضا",
    "ايضا",
    "ليس",
    "لأن",
    "بأن",
    "كأن",
];

/// Inna and her sisters, which take an attached pronoun (أنه, لكنها, كأنهم, لأنه), and the
/// pronouns they take.
const PARTICLES: &[&str] = &["إن", "أن", "ان", "لكن", "كأن", "لأن", "بأن"];
const PARTICLE_PRONOUNS: &[&str] = &[
    "ه", "ها", "هم", "هما", "هن", "ك", "كم", "كما", "كن", "ي", "ني", "نا",
];

/// Closed classes the templates cannot derive: the divine name (a fused
/// article + noun of root أله), and the biradical nouns of the grammars
/// (al-asmāʾ al-thunāʾiyya: ابن, اسم, أب, أخ, يد, دم, امرؤ, ...) whose third
/// radical never surfaces in the singular. Stems as (letters, root).
const IRREGULAR: &[(&str, &str)] = &[
    ("الله", "أله"),
    ("لله", "أله"),
    ("اللهم", "أله"),
    ("ابن", "بني"),
    ("بن", "بني"),
    ("ابنة", "بني"),
    ("بنت", "بني"),
    ("ابنا", "بني"),
    ("ابني", "بني"),
    ("اسم", "سمو"),
    ("بسم", "سمو"),
    ("اسما", "سمو"),
    ("أب", "أبو"),
    ("أبو", "أبو"),
    ("أبا", "أبو"),
    ("أبي", "أبو"),
    ("أخ", "أخو"),
    ("أخو", "أخو"),
    ("أخا", "أخو"),
    ("أخي", "أخو"),
    ("أخت", "أخو"),
    ("يد", "يدي"),
    ("دم", "دمو"),
    ("امرؤ", "مرأ"),
    ("امرأ", "مرأ"),
    ("امرئ", "مرأ"),
    ("امرأة", "مرأ"),
    ("اثنان", "ثني"),
    ("اثنين", "ثني"),
    ("اثنتان", "ثني"),
    ("اثنتين", "ثني"),
    // the nouns of اتقى (Form VIII of وقي, see `IRREGULAR_VERBS`): piety, the pious
    ("تقوى", "وقي"),
    ("تقوا", "وقي"),
    ("تقاة", "وقي"),
    ("تقي", "وقي"),
    ("تقيا", "وقي"),
    ("أتقى", "وقي"),
    ("أتقا", "وقي"),
    ("متق", "وقي"),
    ("متقين", "وقي"),
    ("متقون", "وقي"),
    ("اتقاء", "وقي"),
    // the nouns of اتخذ (see `IRREGULAR_VERBS`)
    ("اتخاذ", "ءخذ"),
    ("متخذ", "ءخذ"),
    ("متخذة", "ءخذ"),
    ("متخذا", "ءخذ"),
    ("متخذين", "ءخذ"),
    ("متخذون", "ءخذ"),
];

/// Clitics that may precede an irregular stem, and pronouns that may follow it.
const IRREGULAR_PREFIXES: &[&str] = &[
    "", "و", "ف", "ب", "ل", "ك", "وب", "ول", "فب", "فل", "ال", "وال", "بال", "فال", "لل", "ولل",
];
const IRREGULAR_SUFFIXES: &[&str] = &["", "ه", "ها", "هم", "هما", "هن", "ك", "كم", "ي", "نا"];

/// The verbs whose paradigms the templates cannot derive: رأى, the one verb that drops
/// its hamza in the imperfect (يرى, نراه: not a root ير- or رو-); جاء, whose hollow ي
/// shows in no common form but يجيء; اتخذ, Form VIII of أخذ with its hamza
/// assimilated to the ت (the templates restore an assimilated و: اتصل → وصل); اتقى,
/// Form VIII of وقي, doubly weak (its و assimilated, its ي dropped or written ى), so
/// one radical shows (اتقوا, يتقون, المتقين); and the imperatives of أخذ and أكل, which
/// drop their hamza (خذوا, كلوا; not خذ, whose فخذ is a thigh). As written alone and as written before an object
/// pronoun (يرى → يراه, جاءوا → جاءوه), each space-separated, with the root; they take
/// the clitics a verb takes.
const IRREGULAR_VERBS: &[(&str, &str, &str)] = &[
    (
        "يرى ترى نرى أرى يرون ترون يروا تروا يرين ترين يريان تريان",
        "يرا ترا نرا أرا يرو ترو يرون ترون يري تري نري أري",
        "رءي",
    ),
    (
        "جاء جاءت جاءوا جاؤوا جاءا جاءتا جئت جئنا جئتم جئتما جئن يجيء تجيء نجيء أجيء يجيئون تجيئون يجيئوا تجيئوا مجيء جيء",
        "جاء جاءت جاءو جاؤو جئت جئنا جئتم يجيئ تجيئ نجيئ أجيئ",
        "جيء",
    ),
    (
        "اتخذ اتخذت اتخذا اتخذوا اتخذنا اتخذتم اتخذن يتخذ تتخذ نتخذ أتخذ يتخذون تتخذون يتخذوا تتخذوا يتخذان تتخذان تتخذين يتخذن اتخذي",
        "اتخذ اتخذت اتخذو اتخذنا اتخذتمو يتخذ تتخذ نتخذ أتخذ يتخذون تتخذون يتخذو تتخذو",
        "ءخذ",
    ),
    (
        "اتقى اتقت اتقوا اتقيا اتقتا اتقيت اتقينا اتقيتم اتقين يتقي تتقي نتقي أتقي يتقون تتقون يتقوا تتقوا يتقين تتقين يتق تتق اتق اتقي",
        "اتقا اتقو يتقي تتقي نتقي أتقي يتقو تتقو يتق تتق",
        "وقي",
    ),
    ("خذوا", "خذو", "ءخذ"),
    ("كلوا", "", "ءكل"),
];
const VERB_PREFIXES: &[&str] = &[
    "", "و", "ف", "ل", "أ", "أف", "أو", "ول", "فل", "س", "وس", "فس",
];
const OBJECT_PRONOUNS: &[&str] = &[
    "ه", "ها", "هم", "هما", "هن", "ك", "كم", "كما", "كن", "ني", "نا",
];

/// Prepositions as written before a pronoun (على → علي, إلى → إلي, لدى → لدي):
/// with و / ف before them and a pronoun after, still function words. (Most of
/// their bare forms are in `FUNCTION_WORDS`; the list and the bare forms both
/// take the conjunctions.)
const PREPOSITIONS: &[(&str, &str)] = &[
    ("على", "علي"),
    ("إلى", "إلي"),
    ("الى", "الي"),
    ("لدى", "لدي"),
    ("عن", "عن"),
    ("من", "من"),
    ("في", "في"),
    ("مع", "مع"),
    ("عند", "عند"),
];
const CONJUNCTIONS: &[&str] = &["", "و", "ف"];
/// Pronouns a preposition takes (without "me"/"us", whose forms are ambiguous: عني, منا).
const PREPOSITION_PRONOUNS: &[&str] = &["ه", "ها", "هم", "هما", "هن", "ك", "كم", "كما", "كن"];

/// Every surface form of the closed classes: function words (no root) and
/// the irregular stems with their clitics and pronouns.
pub(super) static CLOSED: LazyLock<engine::WordMap<Option<&'static str>>> = LazyLock::new(|| {
    let mut t = engine::WordMap::default();
    for (stem, root) in IRREGULAR {
        for p in IRREGULAR_PREFIXES {
            for s in IRREGULAR_SUFFIXES {
                t.insert(format!("{p}{stem}{s}").chars().collect(), Some(*root));
            }
        }
    }
    for (alone, before_pronoun, root) in IRREGULAR_VERBS {
        for p in VERB_PREFIXES {
            for v in alone.split_whitespace() {
                t.insert(format!("{p}{v}").chars().collect(), Some(*root));
            }
            for v in before_pronoun.split_whitespace() {
                for s in OBJECT_PRONOUNS {
                    t.insert(format!("{p}{v}{s}").chars().collect(), Some(*root));
                }
            }
        }
    }
    // function words win over an irregular reading ("بني" is not "my son" here)
    for f in FUNCTION_WORDS {
        t.insert(f.chars().collect(), None);
    }
    for f in JOINED {
        for c in ["و", "ف"] {
            t.insert(format!("{c}{f}").chars().collect(), None);
        }
    }
    for p in PARTICLES {
        for s in PARTICLE_PRONOUNS {
            for c in CONJUNCTIONS {
                t.insert(format!("{c}{p}{s}").chars().collect(), None);
            }
        }
    }
    for (bare, before_pronoun) in PREPOSITIONS {
        for c in CONJUNCTIONS {
            t.insert(format!("{c}{bare}").chars().collect(), None);
            for p in PREPOSITION_PRONOUNS {
                t.insert(format!("{c}{before_pronoun}{p}").chars().collect(), None);
            }
        }
    }
    t
});
