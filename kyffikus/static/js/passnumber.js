/* Kyffikus pass number: normalise, check character, display format.
 * The Python side implements the same spec; keep the two in step.
 * Alphabet: 31 symbols, value = index. A pass number is 9 data symbols and
 * 1 check symbol; it is valid iff sum((i + 1) * value[i]) for i = 0..9 is
 * 0 mod 31. Because 31 is prime this catches every single substituted symbol
 * and every swap of two different neighbouring symbols. */
(function () {
  "use strict";

  var ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXY";
  var LENGTH = 10;
  // Letters left out of the alphabet because they are easily confused.
  var LOOKALIKES = { O: "0", I: "1", L: "1", Z: "2", U: "V" };

  function normalise(text) {
    return String(text == null ? "" : text)
      .toUpperCase()
      // The same separators as the server: space, dot, dash, no-break space, tab.
      .replace(/[ .\-\u00a0\t]/g, "")
      .replace(/[OILZU]/g, function (ch) { return LOOKALIKES[ch]; });
  }

  function weightedSum(symbols) {
    var sum = 0;
    for (var i = 0; i < symbols.length; i++) {
      var value = ALPHABET.indexOf(symbols.charAt(i));
      if (value < 0) { return -1; }
      sum += (i + 1) * value;
    }
    return sum;
  }

  function isValid(text) {
    var symbols = normalise(text);
    if (symbols.length !== LENGTH) { return false; }
    var sum = weightedSum(symbols);
    return sum >= 0 && sum % 31 === 0;
  }

  // The check symbol for 9 data symbols: 10 * c == -sum (mod 31); 28 is 10's inverse.
  function checkSymbol(data) {
    var symbols = normalise(data);
    if (symbols.length !== LENGTH - 1) { return null; }
    var sum = weightedSum(symbols);
    if (sum < 0) { return null; }
    return ALPHABET.charAt(((31 - (sum % 31)) * 28) % 31);
  }

  // "7KQ3M9XA2F" -> "7KQ3-M9XA-2F"; anything not 10 symbols long comes back normalised.
  function format(text) {
    var s = normalise(text);
    if (s.length !== LENGTH) { return s; }
    return s.slice(0, 4) + "-" + s.slice(4, 8) + "-" + s.slice(8);
  }

  window.KyffikusPassNumber = {
    ALPHABET: ALPHABET,
    normalise: normalise,
    isValid: isValid,
    checkSymbol: checkSymbol,
    format: format
  };
})();
