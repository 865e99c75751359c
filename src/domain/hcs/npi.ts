/**
 * US National Provider Identifier: 10 digits whose last is a Luhn check digit computed over the
 * number prefixed with 80840 (the NPI's ISO 7812 issuer prefix), per CMS's NPI check-digit rule.
 */
export function isValidNpi(value: string): boolean {
  if (!/^\d{10}$/.test(value)) return false;
  const digits = `80840${value}`;
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}
