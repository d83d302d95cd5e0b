// Text cleaning of the Hugging Face slow CLIPTokenizer when ftfy is not installed, which is what the
// diffusers pipelines run: `" ".join(BasicTokenizer(strip_accents=False, do_split_on_punc=False)
// .tokenize(text))`. Python and JavaScript differ in what "whitespace" means, so every class
// below is spelled out instead of relying on JS `\s`.

/**
 * Python `str.isspace()` (what `str.split()` / `str.strip()` use): bidi classes WS, B, S and
 * category Zs. Unlike JS `\s` it includes U+001C–U+001F and U+0085 and excludes U+FEFF.
 */
export const PY_SPACE = '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/**
 * Unicode White_Space, which is what `\s` means in Python's `regex` module (the CLIP pattern's
 * `\s`). Unlike JS `\s` it includes U+0085 and excludes U+FEFF.
 */
export const WHITE_SPACE = '\\t\\n\\v\\f\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

/** BasicTokenizer._clean_text, deletions: U+0000, U+FFFD, category C* except \t \n \r. */
const DROP = /[\0\uFFFD]|(?![\t\n\r])\p{C}/gu;
/** BasicTokenizer._clean_text, whitespace: \t \n \r, space and category Zs become a space. */
const TO_SPACE = /[\t\n\r\p{Zs}]/gu;
/** BasicTokenizer._is_chinese_char: the CJK ideograph blocks that get spaces around each char. */
const CJK =
  /[\u4E00-\u9FFF\u3400-\u4DBF\u{20000}-\u{2A6DF}\u{2A700}-\u{2B73F}\u{2B740}-\u{2B81F}\u{2B820}-\u{2CEAF}\uF900-\uFAFF\u{2F800}-\u{2FA1F}]/gu;
const SPLIT = new RegExp(`[${PY_SPACE}]+`, 'u');

/** `_clean_text` followed by `_tokenize_chinese_chars`. */
export function cleanText(text: string): string {
  return text.replace(DROP, '').replace(TO_SPACE, ' ').replace(CJK, ' $& ');
}

/**
 * The words BasicTokenizer returns (no accent stripping, no punctuation split): clean, space out
 * CJK ideographs, NFC, split on Python whitespace, lower-case each word.
 */
export function basicTokenize(text: string): string[] {
  const normalized = cleanText(text).normalize('NFC');
  const words: string[] = [];
  for (const w of normalized.split(SPLIT)) if (w !== '') words.push(w.toLowerCase());
  return words;
}

/** What the HF slow CLIPTokenizer (no ftfy) hands to the CLIP regex: the words joined by one space. */
export function hfCleanText(text: string): string {
  return basicTokenize(text).join(' ');
}
