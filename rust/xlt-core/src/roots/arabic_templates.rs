//! Arabic affixes and stem templates, with their costs: the data the
//! analyser in `arabic` searches over (clitic and inflection prefixes,
//! endings, pronouns, and the verbal and nominal templates).

// Affix kinds: prefixes 0 = any, 1 = nominal (article), 2 = verbal (imperfect);
// suffixes 0 = none/any, 1 = nominal, 2 = verbal, 3 = pronoun, 4 = nominal + pronoun,
// 5 = verbal + pronoun, 6 = perfect subject beginning with a consonant (+ pronoun),
// 7 = plural subject و (+ pronoun), 8 = plural ون (nominal, or verbal after an
// imperfect prefix), 9 = the perfect's ت (1st/2nd person, which shortens a hollow
// stem: قلت, or 3rd feminine, which drops a defective one's last radical: رمت, مضت).
pub(super) fn compatible(p: u8, s: u8) -> bool {
    match p {
        1 => matches!(s, 0 | 1 | 8),
        2 => matches!(s, 0 | 2 | 3 | 5 | 7 | 8),
        _ => true,
    }
}

pub(super) const PREFIXES: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("و", 0.35, 0),
    ("ف", 0.45, 0),
    ("ب", 0.6, 0),
    ("ل", 0.7, 0),
    ("ك", 1.1, 0),
    ("وب", 1.1, 0),
    ("ول", 1.1, 0),
    ("فب", 1.3, 0),
    ("فل", 1.3, 0),
    ("وك", 1.4, 0),
    ("ال", 0.2, 1),
    ("وال", 0.4, 1),
    ("فال", 0.5, 1),
    ("بال", 0.4, 1),
    ("كال", 0.5, 1),
    ("لل", 0.4, 1),
    ("ولل", 0.6, 1),
    ("فلل", 0.7, 1),
    ("وبال", 0.6, 1),
    ("ي", 0.8, 2),
    ("ت", 1.0, 2),
    ("ن", 1.1, 2),
    ("أ", 1.0, 2),
    ("وي", 0.85, 2),
    ("وت", 1.15, 2),
    ("ون", 1.25, 2),
    ("وأ", 1.15, 2),
    ("في", 0.9, 2),
    ("فت", 1.2, 2),
    ("فن", 1.3, 2),
    ("فأ", 1.2, 2),
    ("لي", 0.9, 2),
    ("لت", 1.5, 2),
    ("لن", 1.6, 2),
    ("لأ", 1.5, 2),
    // the lam of command after و / ف (فليكتب, وليكن, فلتنظر)
    ("ولي", 1.25, 2),
    ("فلي", 1.3, 2),
    ("ولت", 1.85, 2),
    ("فلت", 1.9, 2),
    ("أ", 1.1, 0),
    ("أو", 1.3, 0),
    ("أف", 1.3, 0),
    // the interrogative أ before an imperfect (أيحسب, أتعلمون, أنؤمن)
    ("أي", 1.4, 2),
    ("أت", 1.5, 2),
    ("أن", 1.6, 2),
    ("سي", 1.0, 2),
    ("ست", 1.2, 2),
    ("سن", 1.3, 2),
    ("سأ", 1.3, 2),
    // the same with the 1st-person أ written without its hamza (سادرس)
    ("سا", 1.3, 2),
    ("وسي", 1.3, 2),
    ("فسي", 1.4, 2),
    ("وست", 1.5, 2),
    ("وسن", 1.6, 2),
    ("وسأ", 1.6, 2),
    ("فست", 1.6, 2),
    ("فسن", 1.7, 2),
    ("فسأ", 1.7, 2),
    ("وسا", 1.6, 2),
    ("فسا", 1.7, 2),
];

/// Inflectional endings (string, cost, kind).
pub(super) const ENDINGS: &[(&str, f32, u8)] = &[
    ("", 0.0, 0),
    ("ة", 0.2, 1),
    // ta marbuta written as ha (manuscripts, informal text: المدرسه): a noun ending,
    // so it may follow the article, which a pronoun ه may not
    ("ه", 1.4, 1),
    ("ات", 0.5, 1),
    ("ان", 0.8, 0),
    ("ين", 0.7, 0),
    ("ون", 0.85, 8),
    ("ية", 0.7, 1),
    ("يات", 0.9, 1),
    ("يين", 1.0, 1),
    ("يون", 1.0, 1),
    ("ي", 1.0, 1),
    ("اء", 1.2, 1),
    ("تين", 1.0, 1),
    ("تان", 1.0, 1),
    ("يتين", 1.1, 1),
    ("يتان", 1.1, 1),
    ("وا", 0.6, 7),
    ("ت", 0.5, 9),
    ("تم", 0.8, 6),
    ("تما", 1.0, 6),
    ("تن", 1.0, 6),
    ("نا", 0.9, 6),
    ("ا", 0.7, 0),
    ("يا", 0.8, 1),
    ("ن", 1.1, 2),
    ("تا", 1.1, 6),
];

/// Endings as written before an attached pronoun.
pub(super) const ENDINGS_BEFORE_PRONOUN: &[(&str, f32, u8)] = &[
    ("", 0.0, 3),
    ("ت", 0.3, 4),
    ("ات", 0.5, 4),
    ("ي", 0.9, 4),
    ("و", 0.7, 7),
    ("ون", 0.8, 5),
    ("تمو", 1.0, 6),
    ("ا", 1.0, 5),
    // a dual or plural noun drops its ن before a pronoun (كتاباه): these are verbal
    ("ان", 1.0, 5),
    ("ين", 1.0, 5),
    ("تن", 1.1, 6),
    ("نا", 1.1, 6),
    ("يت", 0.9, 4),
    ("يات", 1.0, 4),
    ("تا", 1.0, 6),
    ("تما", 1.0, 6),
    ("ن", 1.1, 5),
    ("يي", 1.1, 4),
    ("تي", 1.1, 4),
    ("يتي", 1.2, 4),
];

pub(super) const PRONOUNS: &[(&str, f32)] = &[
    ("ه", 0.5),
    ("ها", 0.5),
    ("هم", 0.5),
    ("هما", 0.6),
    ("هن", 0.7),
    ("ك", 0.9),
    ("كم", 0.7),
    ("كما", 0.8),
    ("كن", 0.9),
    ("ي", 1.0),
    ("ني", 0.9),
    ("نا", 0.7),
];

/// Two object pronouns on a verb, the first "you" (كمو before a pronoun): أنلزمكموها,
/// فسيكفيكهم, أسقيناكموه.
pub(super) const DOUBLE_PRONOUNS: &[(&str, f32)] =
    &[("كموه", 1.2), ("كموها", 1.2), ("كموهم", 1.3), ("كهم", 1.4)];

/// Stem templates (`C` = radical, `S` = radical that is not weak; `<`, `-`,
/// `>`, `=` mark two-radical ones as initial-, hollow-, final-weak or geminate;
/// `+` = only before a suffix; `*` = noun template, never after an imperfect
/// prefix; `!` = imperfect stem of a derived Form, only after one).
pub(super) const PATTERNS: &[(&str, f32)] = &[
    // bare roots
    ("CCC", 0.0),
    ("CC", 0.9),
    ("CCCC", 1.6),
    // Form I nouns and adjectives, broken plurals
    ("CاCC", 0.6),
    ("CCاC*", 0.5),
    ("CCيC*", 0.5),
    ("CCوC*", 0.6),
    ("CوCC", 1.4),
    ("CيCC", 1.4),
    ("CCCى", 0.9),
    ("CCاCة*", 0.9),
    ("CواCC*", 0.9),
    ("CCائC*", 0.9),
    ("CCايC*", 1.0),
    ("CCاءC*", 1.2),
    ("أCCاC*", 0.8),
    ("اCCاC*", 0.9),
    ("أCاCC", 1.1),
    ("أCCC", 0.6),
    ("اCCC", 0.9),
    ("إCCاC*", 0.8),
    ("أCاCيC*", 1.3),
    ("CCاCيC*", 1.6),
    ("CCاCC", 1.6),
    ("CCCاء*", 1.2),
    ("CCCان*", 1.3),
    // fu'lūl of quadriliteral roots (عصفور, عنقود)
    ("CCCوC*", 1.2),
    ("CاCوC*", 1.3),
    // maf'al, maf'ul, mif'al, maf'il, plurals mafa'il / mafa'il
    ("مCCC*", 0.7),
    ("مCCوC*", 0.5),
    ("مCCاC*", 0.9),
    ("مCCيC*", 1.0),
    ("مCاCC*", 0.8),
    ("مCاCيC*", 0.9),
    // derived Forms: perfect, imperfect stem, participles, masdars
    ("تCCC", 0.9),
    ("تCCيC*", 0.6),
    ("تCاCC", 0.8),
    ("تCاCيC*", 1.1),
    ("تCCاC*", 1.0),
    ("اCتSC", 0.8),
    ("CتSC!", 0.9),
    ("CتC", 1.1),
    ("اCتCاC*", 0.6),
    ("انCSC", 0.9),
    ("نCSC!", 1.3),
    ("انCCاC*", 0.7),
    ("استCCC", 0.5),
    ("ستCCC!", 0.8),
    ("استCCاC*", 0.4),
    ("مستCCC*", 0.4),
    ("مستCC*", 0.7),
    ("استCC", 0.8),
    ("ستCC!", 1.0),
    ("متCCC*", 0.7),
    ("متCاCC*", 0.7),
    ("منCSC*", 0.8),
    ("مCتSC*", 0.8),
    // Form VIII of a geminate root, its last two radicals merged (احتج, يمتد, مشتد)
    ("اCتC=", 1.0),
    ("CتC=!", 1.5),
    ("مCتC=*", 1.0),
    ("اCطSC", 1.0),
    ("اCدSC", 1.2),
    ("مCطSC*", 1.1),
    // Form VIII of an assimilated root, its و merged into the infix ت (اتفق,
    // اتصال, متصل, يتفق): a shade cheaper than reading the ت as a radical (و
    // roots far outnumber ت roots; the table keeps اتبع, يترك with تبع, ترك)
    ("اتCاC<", 0.4),
    ("اتCC<", 0.4),
    ("متCC<*", 0.2),
    ("تCC<!", 0.1),
    // hollow stems (middle و/ي dropped or turned into ا)
    ("CاC-", 0.2),
    ("CائC-", 0.5),
    // the same with the hamza seat written as a plain ي (common in older texts)
    ("CايC-", 0.7),
    ("CيC-", 1.2),
    // after an imperfect prefix the written ي is the long vowel of a hollow
    // stem of either weak letter (Form I يسير, Form IV يريد, يقيم): as cheap
    // as reading it as a radical, so it is no evidence for ي
    ("CيC-!", 0.1),
    ("مCاC-*", 1.0),
    ("مCيC-*", 0.7),
    ("أCاC-", 0.5),
    // Forms IV, VIII and X of hollow roots, shortened before a consonantal subject
    // suffix (أردت, اخترنا, استطعتم)
    ("أCC~", 1.1),
    ("اCتC~", 1.1),
    ("استCC~", 0.9),
    ("إCاC-", 0.5),
    ("اCاC-", 1.2),
    ("استCاC-", 0.5),
    ("مستCاC-*", 0.8),
    ("مستCيC-*", 0.8),
    ("ستCيC-!", 0.7),
    ("اCتاC-", 0.6),
    ("مCتاC-*", 0.6),
    ("اCتياC-", 0.5),
    ("انCاC-", 1.1),
    // defective stems (final و/ي as ا/ى/ي or dropped)
    ("CCا>", 0.9),
    ("CCى>", 0.8),
    ("مCCى>*", 0.6),
    ("تCاCى>", 0.6),
    // the same with the alif maqsura written ا before a suffix (معناه)
    ("مCCا>+*", 0.7),
    ("تCاCا>+", 0.7),
    // Form IV perfect of a defective root before a pronoun (أعطاه, ألقاها)
    ("أCCا>+", 0.8),
    ("CCاء>*", 0.35),
    ("إCCاء>*", 0.4),
    ("أCCاء>*", 0.7),
    ("اCتCاء>*", 0.3),
    ("انCCاء>*", 0.4),
    ("استCCاء>*", 0.25),
    ("مCCي>*", 1.2),
    ("اCتCى>", 0.9),
    ("استCCى>", 0.8),
    ("تCCي>", 0.6),
    ("اCتCا>+", 1.0),
    ("استCCا>+", 0.9),
    // assimilated stems (initial و dropped)
    ("CC<", 1.5),
    ("CتاC-!", 0.6),
    ("CتCي>!", 1.0),
    ("است{يو}CاC", 0.5),
    ("إيCاC<", 0.8),
    ("ايCاC<", 0.9),
    // Form IV masdar of a hamza-initial root, the second hamza written ي
    // (إيمان, إيثار): as the assimilated one, the table picks ء or و
    ("إ{يء}CاC*", 0.8),
    ("ا{يء}CاC*", 0.9),
    ("ميCاC<*", 0.9),
    // Form IV of a ي-initial root, its ي written و after the u-vowel (يوقن, موقنين, موسر)
    ("{وي}CC!", 0.8),
    ("م{وي}CC*", 0.8),
    ("مCC<*", 1.6),
    // geminate stems: plural af'ila, active participle fā'il
    ("أCCة=*", 0.8),
    ("CاC=", 0.6),
    ("مCC=*", 0.8),
    // doubly weak (w-initial, weak-final): Form X masdar
    ("است{يو}Cا{ءي}", 0.3),
];
