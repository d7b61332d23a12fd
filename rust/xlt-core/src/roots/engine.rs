//! The analyser shared by the abjad scripts (Arabic, Hebrew): enumerate
//! prefix × stem × suffix splits, match the stem against pattern templates
//! (`C` marks a radical, other letters are fixed), restore weak or geminate
//! radicals of two-radical results, and keep the cheapest analysis.
//! Costs encode linguistic plausibility (common affixes and patterns are
//! cheap, stripping letters that are usually radicals is dear).
//!
//! The search allocates nothing per word: affixes are indexed by their
//! first / last letter, candidates live in fixed arrays.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// FNV-1a: a fast hash for the short letter sequences of closed-class tables.
#[derive(Default)]
pub struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x100000001b3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ n as u64).wrapping_mul(0x100000001b3);
    }
}

/// Words (letter sequences) to values, hashed with FNV.
pub type WordMap<V> = HashMap<Vec<char>, V, BuildHasherDefault<Fnv>>;

/// One affix with its cost and kind (the language's compatibility classes).
pub type Affix = (Vec<char>, f32, u8);
/// Up to six restored three-radical roots with their costs.
pub type Restored = [Option<([char; 3], f32)>; 6];

/// One position of a template.
#[derive(Debug, Clone, Copy)]
enum Slot {
    /// A radical: any letter, kept.
    Radical,
    /// A fixed pattern letter.
    Fixed(char),
    /// A weak radical written as another letter (surface, radical).
    Written(char, char),
    /// A radical that is not a weak letter (the middle radical of derived
    /// Forms, where a weak one would have turned into a long vowel).
    Strong,
}

/// A compiled template: its slots and cost.
#[derive(Debug, Clone)]
pub struct Pattern {
    slots: Vec<Slot>,
    cost: f32,
    /// Two-radical templates name how the missing radical is restored.
    weak: Weak,
    /// Only before a suffix (a spelling that only occurs there).
    suffixed: bool,
    /// A noun template: never after a verbal (imperfect) prefix.
    nominal: bool,
    /// An imperfect stem: only after a verbal prefix.
    imperfect: bool,
}

/// Where a two-radical stem gets its third radical.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Weak {
    /// Any restoration the language allows (scored by `Lang::restore`).
    Any,
    /// Middle radical (hollow roots: و / ו).
    Hollow,
    /// First radical (assimilated roots: و / י, or Hebrew נ).
    Initial,
    /// Last radical (defective roots: ي / ה).
    Final,
    /// Second radical repeated (geminate roots).
    Geminate,
    /// Middle radical of a hollow stem whose long vowel a consonantal subject suffix
    /// shortened (Arabic أردت, استطعت): restored only before such a suffix.
    Shortened,
}

/// Everything language-specific the engine needs.
pub struct Lang {
    pub prefixes: Affixes,
    pub suffixes: Affixes,
    /// Patterns indexed by stem length.
    pub patterns: Vec<Vec<Pattern>>,
    /// The prefix kind of imperfect verbs, which no noun template follows.
    pub verbal_prefix: Option<u8>,
    /// Letters a `Strong` radical may not be.
    pub weak_letters: &'static [char],
    /// Penalty of a radical sequence (implausible letters, identical C1=C2, ...),
    /// never negative.
    pub root_cost: fn(&[char]) -> f32,
    /// Candidate three-radical roots for two radicals, with their costs
    /// (given the restoration hint and the kinds of the stripped prefix and
    /// suffix, if any).
    pub restore: fn(&[char; 2], Weak, Option<u8>, Option<u8>) -> Restored,
    /// May a prefix and a suffix of these kinds go together?
    pub compatible: fn(u8, u8) -> bool,
    /// The shortest prefix a word must lose (e.g. a word-initial article).
    pub min_prefix: fn(&[char]) -> usize,
}

/// Affixes with an index by their outer letter (first of a prefix, last of a
/// suffix), so a word only meets the affixes it can carry.
pub struct Affixes {
    items: Vec<Affix>,
    /// Affix indices by the low byte of their outer letter (verified on match).
    by_letter: Vec<Vec<u16>>,
    empty: Vec<u16>,
}

impl Affixes {
    fn new(list: &[(&str, f32, u8)], prefix: bool) -> Self {
        let items: Vec<Affix> = list
            .iter()
            .map(|(s, c, k)| (s.chars().collect(), *c, *k))
            .collect();
        let mut by_letter: Vec<Vec<u16>> = vec![Vec::new(); 256];
        let mut empty = Vec::new();
        for (i, (a, _, _)) in items.iter().enumerate() {
            let outer = if prefix { a.first() } else { a.last() };
            match outer {
                None => empty.push(i as u16),
                Some(&c) => by_letter[c as usize & 0xFF].push(i as u16),
            }
        }
        Affixes {
            items,
            by_letter,
            empty,
        }
    }

    /// Indices (in list order) of the affixes `w` carries, into `out`.
    fn matching(&self, w: &[char], prefix: bool, out: &mut [u16; 64]) -> usize {
        let outer = if prefix { w.first() } else { w.last() };
        let lettered = outer.map_or(&[][..], |&c| self.by_letter[c as usize & 0xFF].as_slice());
        let mut n = 0;
        for &i in self.empty.iter().chain(lettered) {
            let a = &self.items[i as usize].0;
            let fits = if prefix { starts(w, a) } else { ends(w, a) };
            if fits && n < out.len() {
                out[n] = i;
                n += 1;
            }
        }
        n
    }
}

/// Does `w` start with `a`? (Written out: slice equality calls memcmp, slow
/// on slices this short.)
#[inline]
pub fn starts(w: &[char], a: &[char]) -> bool {
    a.len() <= w.len() && a.iter().zip(w).all(|(x, y)| x == y)
}

/// Does `w` end with `a`?
#[inline]
pub fn ends(w: &[char], a: &[char]) -> bool {
    a.len() <= w.len() && a.iter().rev().zip(w.iter().rev()).all(|(x, y)| x == y)
}

/// Compile a prefix list (string, cost, kind).
pub fn prefixes(list: &[(&str, f32, u8)]) -> Affixes {
    Affixes::new(list, true)
}

/// Compile a suffix list (string, cost, kind).
pub fn suffixes(list: &[(&str, f32, u8)]) -> Affixes {
    Affixes::new(list, false)
}

/// Compile templates: `C` = radical, `S` = radical that is not a weak letter,
/// `{xy}` = radical `y` written `x`; a trailing `<`, `-`, `>`, `=` on the
/// template marks a two-radical one as initial-, hollow-, final-weak or
/// geminate (`~`: hollow, shortened before a subject suffix), a trailing `+` restricts it to stems followed by a suffix, a
/// trailing `*` marks a noun template (never after an imperfect prefix), a
/// trailing `!` an imperfect stem (only after one).
pub fn patterns<S: AsRef<str>>(list: &[(S, f32)]) -> Vec<Vec<Pattern>> {
    let mut out: Vec<Vec<Pattern>> = vec![Vec::new(); 12];
    for (t, cost) in list {
        let mut weak = Weak::Any;
        let mut suffixed = false;
        let mut nominal = false;
        let mut imperfect = false;
        let mut slots = Vec::new();
        let t = t.as_ref();
        let mut chars = t.chars();
        while let Some(ch) = chars.next() {
            match ch {
                'C' => slots.push(Slot::Radical),
                'S' => slots.push(Slot::Strong),
                '{' => {
                    let (Some(x), Some(y), Some('}')) = (chars.next(), chars.next(), chars.next())
                    else {
                        panic!("bad template {t}: write a written radical as {{xy}}");
                    };
                    slots.push(Slot::Written(x, y));
                }
                '<' => weak = Weak::Initial,
                '-' => weak = Weak::Hollow,
                '>' => weak = Weak::Final,
                '=' => weak = Weak::Geminate,
                '~' => weak = Weak::Shortened,
                '+' => suffixed = true,
                '*' => nominal = true,
                '!' => imperfect = true,
                c => slots.push(Slot::Fixed(c)),
            }
        }
        let n = slots.len();
        out[n].push(Pattern {
            slots,
            cost: *cost,
            weak,
            suffixed,
            nominal,
            imperfect,
        });
    }
    for p in &mut out {
        p.sort_by(|a, b| a.cost.total_cmp(&b.cost));
    }
    out
}

/// Where the search sends analyses: it prunes any costing `limit()` or more.
trait Sink {
    fn limit(&self) -> f32;
    fn offer(&mut self, root: &[char], cost: f32);
}

/// The best analysis so far: up to four radicals and the total cost.
struct Best {
    root: [char; 4],
    len: usize,
    cost: f32,
}

impl Sink for Best {
    fn limit(&self) -> f32 {
        self.cost
    }
    fn offer(&mut self, root: &[char], cost: f32) {
        if cost < self.cost {
            self.root[..root.len()].copy_from_slice(root);
            self.len = root.len();
            self.cost = cost;
        }
    }
}

/// Every analysis within `margin` of the best one.
struct Near {
    margin: f32,
    best: f32,
    found: Vec<(Vec<char>, f32)>,
}

impl Sink for Near {
    fn limit(&self) -> f32 {
        self.best + self.margin
    }
    fn offer(&mut self, root: &[char], cost: f32) {
        if cost <= self.limit() {
            self.best = self.best.min(cost);
            self.found.push((root.to_vec(), cost));
        }
    }
}

/// The cheapest root of `w` (already normalised) and its cost.
pub fn analyse(w: &[char], lang: &Lang) -> Option<(Vec<char>, f32)> {
    let mut best = Best {
        root: ['\0'; 4],
        len: 0,
        cost: f32::INFINITY,
    };
    search(w, lang, &mut best);
    (best.len > 0).then(|| (best.root[..best.len].to_vec(), best.cost))
}

/// The distinct roots of `w` whose cheapest analysis costs at most `margin`
/// more than the best one, cheapest first.
pub fn candidates(w: &[char], lang: &Lang, margin: f32) -> Vec<(Vec<char>, f32)> {
    let mut near = Near {
        margin,
        best: f32::INFINITY,
        found: Vec::new(),
    };
    search(w, lang, &mut near);
    let mut found = near.found;
    found.retain(|(_, c)| *c <= near.best + margin);
    found.sort_by(|a, b| a.1.total_cmp(&b.1));
    let mut out: Vec<(Vec<char>, f32)> = Vec::new();
    for (r, c) in found {
        if !out.iter().any(|(o, _)| *o == r) {
            out.push((r, c));
        }
    }
    out
}

fn search<S: Sink>(w: &[char], lang: &Lang, sink: &mut S) {
    const MAX: usize = 64;
    // Affixes of the whole word, found once (a suffix of `rest` is one of `w`).
    let (mut pres, mut sufs) = ([0u16; MAX], [0u16; MAX]);
    let n_pres = lang.prefixes.matching(w, true, &mut pres);
    let n_sufs = lang.suffixes.matching(w, false, &mut sufs);
    let min_prefix = (lang.min_prefix)(w);
    let mut radicals = ['\0'; 12];
    for &pi in &pres[..n_pres] {
        let (p, pc, pk) = &lang.prefixes.items[pi as usize];
        if p.len() < min_prefix || w.len() < p.len() + 2 {
            continue;
        }
        let rest = &w[p.len()..];
        for &si in &sufs[..n_sufs] {
            let (s, sc, sk) = &lang.suffixes.items[si as usize];
            if rest.len() < s.len() + 2 || !(lang.compatible)(*pk, *sk) {
                continue;
            }
            let base = pc + sc;
            let verbal = !p.is_empty() && lang.verbal_prefix == Some(*pk);
            if base >= sink.limit() {
                continue;
            }
            let stem = &rest[..rest.len() - s.len()];
            let Some(pats) = lang.patterns.get(stem.len()) else {
                continue;
            };
            for pat in pats {
                let cost = base + pat.cost;
                if cost >= sink.limit() {
                    break; // patterns are sorted by cost
                }
                if (pat.suffixed && s.is_empty())
                    || (pat.nominal && verbal)
                    || (pat.imperfect && !verbal)
                {
                    continue;
                }
                let mut n = 0;
                let ok = pat.slots.iter().zip(stem).all(|(slot, &ch)| match *slot {
                    Slot::Fixed(f) => f == ch,
                    Slot::Radical => {
                        radicals[n] = ch;
                        n += 1;
                        true
                    }
                    Slot::Strong => {
                        radicals[n] = ch;
                        n += 1;
                        !lang.weak_letters.contains(&ch)
                    }
                    Slot::Written(x, y) => {
                        radicals[n] = y;
                        n += 1;
                        x == ch
                    }
                });
                if ok {
                    let affixed = (
                        (!p.is_empty()).then_some(*pk),
                        (!s.is_empty()).then_some(*sk),
                    );
                    consider(&radicals[..n], pat.weak, affixed, cost, lang, sink);
                }
            }
        }
    }
}

fn consider<S: Sink>(
    r: &[char],
    weak: Weak,
    affixed: (Option<u8>, Option<u8>),
    cost: f32,
    lang: &Lang,
    sink: &mut S,
) {
    match r.len() {
        2 => {
            for (root, c) in (lang.restore)(&[r[0], r[1]], weak, affixed.0, affixed.1)
                .into_iter()
                .flatten()
            {
                // root costs are never negative: skip those already too dear
                if cost + c < sink.limit() {
                    sink.offer(&root, cost + c + (lang.root_cost)(&root));
                }
            }
        }
        3 | 4 => sink.offer(r, cost + (lang.root_cost)(r)),
        _ => {}
    }
}
