//! The shared consonant inventory: one symbol per class of Semitic consonants
//! that correspond across Arabic, Hebrew, Ge'ez and Maltese spelling, so that
//! roots (and transliterated text) compare across scripts.
//!
//! Classes are deliberately coarse, because the four orthographies merge
//! different sounds: emphatics fold into their plain consonant (ṭ→t, ṣ→s,
//! ḍ/ẓ→d), all sibilants into `s` (Hebrew shin corresponds to Arabic sin),
//! all h-sounds into `h` (Amharic and Maltese merged them), ʔ and ʕ into `ʔ`
//! (Amharic merged them; Maltese għ is both ع and غ), interdentals into their
//! stops (θ→t, ð→d, as in Maltese), p/v into `b`.
//!
//! Symbols: ʔ b t g h d r z s f q k l m n w y.

/// The inventory symbol of one Arabic, Hebrew or Maltese consonant letter.
pub fn consonant(c: char) -> Option<char> {
    Some(match c {
        // Arabic (and Persian/Urdu letters)
        'ء' | 'أ' | 'إ' | 'آ' | 'ؤ' | 'ئ' | 'ع' | 'غ' => 'ʔ',
        'ب' | 'پ' => 'b',
        'ت' | 'ث' | 'ط' | 'ة' | 'چ' | 'ٹ' => 't',
        'ج' | 'گ' => 'g',
        'ح' | 'خ' | 'ه' | 'ھ' => 'h',
        'د' | 'ذ' | 'ض' | 'ظ' | 'ڈ' => 'd',
        'ر' | 'ڑ' => 'r',
        'ز' | 'ژ' => 'z',
        'س' | 'ش' | 'ص' => 's',
        'ف' => 'f',
        'ق' => 'q',
        'ك' | 'ک' => 'k',
        'ل' => 'l',
        'م' => 'm',
        'ن' | 'ں' => 'n',
        'و' => 'w',
        'ي' | 'ى' | 'ی' | 'ے' => 'y',
        // Hebrew
        'א' | 'ע' => 'ʔ',
        'ב' => 'b',
        'ג' => 'g',
        'ד' => 'd',
        'ה' | 'ח' => 'h',
        'ו' => 'w',
        'ז' => 'z',
        'ט' | 'ת' => 't',
        'י' => 'y',
        'כ' | 'ך' => 'k',
        'ל' => 'l',
        'מ' | 'ם' => 'm',
        'נ' | 'ן' => 'n',
        'ס' | 'צ' | 'ץ' | 'ש' => 's',
        'פ' | 'ף' => 'f',
        'ק' => 'q',
        'ר' => 'r',
        // Maltese (għ is handled by `transliterate`)
        'b' | 'p' | 'v' => 'b',
        't' | 'ċ' => 't',
        'g' | 'ġ' => 'g',
        'h' | 'ħ' => 'h',
        'd' => 'd',
        'r' => 'r',
        'z' | 'ż' => 'z',
        's' | 'x' => 's',
        'f' => 'f',
        'q' => 'q',
        'k' | 'c' => 'k',
        'l' => 'l',
        'm' => 'm',
        'n' => 'n',
        'w' => 'w',
        'j' | 'y' => 'y',
        _ => return None,
    })
}

/// The inventory symbol of a Ge'ez syllable's consonant and its vowel order
/// (0 = ä, 1 = u, 2 = i, 3 = a, 4 = e, 5 = ə/none, 6 = o, 7 = wa).
pub fn geez(c: char) -> Option<(char, u8)> {
    let cp = c as u32;
    if !(0x1200..0x1358).contains(&cp) {
        return None;
    }
    let (row, order) = ((cp - 0x1200) / 8, ((cp - 0x1200) % 8) as u8);
    const ROWS: &[char; 43] = &[
        'h', 'l', 'h', 'm', 's', 'r', 's', 's', 'q', 'q', 'q', 'q', 'b', 'b', 't', 't', 'h', 'h',
        'n', 'n', 'ʔ', 'k', 'k', 'h', 'h', 'w', 'ʔ', 'z', 'z', 'y', 'd', 'd', 'g', 'g', 'g', 'g',
        't', 't', 'b', 's', 's', 'f', 'b',
    ];
    Some((ROWS[row as usize], order))
}

/// Transliterate text into the inventory: consonants as their symbol, Ge'ez
/// syllables as consonant + vowel, Arabic/Hebrew vowel letters ا as `a`,
/// diacritics dropped, everything else lowercased and kept.
pub fn transliterate(text: &str) -> String {
    const VOWELS: [&str; 8] = ["e", "u", "i", "a", "e", "", "o", "wa"];
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if let Some((s, order)) = geez(c) {
            out.push(s);
            out.push_str(VOWELS[order as usize]);
            continue;
        }
        let lower = c.to_lowercase().next().unwrap_or(c);
        if lower == 'g' && matches!(chars.peek(), Some('ħ' | 'Ħ')) {
            chars.next();
            out.push('ʔ');
            continue;
        }
        match c {
            'ا' | 'ٱ' => out.push('a'),
            '\u{591}'..='\u{5C7}'
            | '\u{610}'..='\u{61A}'
            | '\u{64B}'..='\u{65F}'
            | '\u{670}'
            | '\u{640}' => {}
            _ => out.push(consonant(lower).unwrap_or(lower)),
        }
    }
    out
}

/// A root (any script) as inventory consonants only: Ge'ez vowel orders and
/// anything that is not a consonant are dropped (Maltese għ becomes ʔ).
pub fn transliterate_root(root: &str) -> String {
    transliterate(root)
        .chars()
        .filter(|c| "ʔbtghdrzsfqklmnwy".contains(*c))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kaf_across_scripts() {
        let k: Vec<_> = ['ك', 'כ', 'k'].iter().map(|&c| consonant(c)).collect();
        assert!(k.iter().all(|&s| s == Some('k')));
        assert_eq!(geez('ከ'), Some(('k', 0)));
        assert_eq!(geez('ኩ'), Some(('k', 1)));
        assert_eq!(transliterate("كتب"), "ktb");
        assert_eq!(transliterate("כתב"), "ktb");
        assert_eq!(transliterate("ktieb"), "ktieb");
        assert_eq!(transliterate("Għajn"), "ʔayn");
        assert_eq!(transliterate("עַיִן"), "ʔyn");
    }
}
