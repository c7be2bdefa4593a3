/**
 * Characters that make text read differently from what it holds, written as visible
 * `\u` escapes wherever text from outside is shown: in error messages and logs (every
 * control character), and on a page (the bidirectional controls; the inbox page,
 * `examples/inbox`, bundles this module). One table, so both escape the same controls.
 */

/**
 * The bidirectional controls: the Arabic letter mark (U+061C), the left-to-right and
 * right-to-left marks (U+200E/F), the embeddings and overrides (U+202A–U+202E) and the
 * isolates (U+2066–U+2069). `\u202Egnp.exe` is shown as `exe.png`.
 */
const BIDI_CONTROLS = '\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';

/**
 * Characters a message must not carry to a client or a log: C0 and C1 controls (a
 * forged line, a terminal escape), the bidirectional controls and the line and
 * paragraph separators U+2028/U+2029.
 */
const CONTROL_CHARACTERS = new RegExp(`[\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029${BIDI_CONTROLS}]`, 'g');
const BIDI_CHARACTERS = new RegExp(`[${BIDI_CONTROLS}]`, 'g');

/** `\u` and the character's code in four hex digits. */
const escaped = (character: string): string => `\\u${character.charCodeAt(0).toString(16).padStart(4, '0')}`;

/** `text` with every control character (C0, C1, bidirectional, line separators) written as a `\u` escape. */
export function escapeControlCharacters(text: string): string {
  return text.replace(CONTROL_CHARACTERS, escaped);
}

/** `text` with every bidirectional control written as a `\u` escape; line breaks and everything else kept. */
export function escapeBidiControls(text: string): string {
  return text.replace(BIDI_CHARACTERS, escaped);
}
