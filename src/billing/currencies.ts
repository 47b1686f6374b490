// ISO 4217 active currencies and their minor-unit digits (the exponent: 2 means
// 1 USD = 100 minor units). Source: the ISO 4217 maintenance agency's "list one"
// published 2024-06-25 (after ZWG replaced ZWL, SLE replaced SLL and HRK was withdrawn).
//
// Left out on purpose, because nobody is invoiced in them:
//  - fund / index codes (BOV, CHE, CHW, CLF, COU, MXV, USN, UYI, UYW);
//  - codes with no minor unit ("N.A."): precious metals XAG XAU XPD XPT, bond-market
//    units XBA-XBD, XDR, XSU, XUA, and the test/no-currency codes XTS XXX.
// XCG (Caribbean guilder, replaces ANG from 2025) is not in this edition of the list.
//
// Digits follow ISO, not CLDR/Intl: ISO says IQD 3 and ISK 0 while Intl.NumberFormat
// rounds some of these differently, so never derive invoice precision from Intl.
const DIGITS: Readonly<Record<string, number>> = {
  AED: 2, AFN: 2, ALL: 2, AMD: 2, ANG: 2, AOA: 2, ARS: 2, AUD: 2, AWG: 2, AZN: 2,
  BAM: 2, BBD: 2, BDT: 2, BGN: 2, BHD: 3, BIF: 0, BMD: 2, BND: 2, BOB: 2, BRL: 2,
  BSD: 2, BTN: 2, BWP: 2, BYN: 2, BZD: 2, CAD: 2, CDF: 2, CHF: 2, CLP: 0, CNY: 2,
  COP: 2, CRC: 2, CUC: 2, CUP: 2, CVE: 2, CZK: 2, DJF: 0, DKK: 2, DOP: 2, DZD: 2,
  EGP: 2, ERN: 2, ETB: 2, EUR: 2, FJD: 2, FKP: 2, GBP: 2, GEL: 2, GHS: 2, GIP: 2,
  GMD: 2, GNF: 0, GTQ: 2, GYD: 2, HKD: 2, HNL: 2, HTG: 2, HUF: 2, IDR: 2, ILS: 2,
  INR: 2, IQD: 3, IRR: 2, ISK: 0, JMD: 2, JOD: 3, JPY: 0, KES: 2, KGS: 2, KHR: 2,
  KMF: 0, KPW: 2, KRW: 0, KWD: 3, KYD: 2, KZT: 2, LAK: 2, LBP: 2, LKR: 2, LRD: 2,
  LSL: 2, LYD: 3, MAD: 2, MDL: 2, MGA: 2, MKD: 2, MMK: 2, MNT: 2, MOP: 2, MRU: 2,
  MUR: 2, MVR: 2, MWK: 2, MXN: 2, MYR: 2, MZN: 2, NAD: 2, NGN: 2, NIO: 2, NOK: 2,
  NPR: 2, NZD: 2, OMR: 3, PAB: 2, PEN: 2, PGK: 2, PHP: 2, PKR: 2, PLN: 2, PYG: 0,
  QAR: 2, RON: 2, RSD: 2, RUB: 2, RWF: 0, SAR: 2, SBD: 2, SCR: 2, SDG: 2, SEK: 2,
  SGD: 2, SHP: 2, SLE: 2, SOS: 2, SRD: 2, SSP: 2, STN: 2, SVC: 2, SYP: 2, SZL: 2,
  THB: 2, TJS: 2, TMT: 2, TND: 3, TOP: 2, TRY: 2, TTD: 2, TWD: 2, TZS: 2, UAH: 2,
  UGX: 0, USD: 2, UYU: 2, UZS: 2, VED: 2, VES: 2, VND: 0, VUV: 0, WST: 2, XAF: 0,
  XCD: 2, XOF: 0, XPF: 0, YER: 2, ZAR: 2, ZMW: 2, ZWG: 2,
};

// A Map, so that codes like "constructor" or "__proto__" are not found on the prototype.
const TABLE: ReadonlyMap<string, number> = new Map(Object.entries(DIGITS));

/** Every known code, upper case, sorted. */
export const CURRENCY_CODES: readonly string[] = Object.freeze([...TABLE.keys()].sort());

/**
 * Minor-unit digits of an ISO 4217 code, or undefined when unknown.
 * Codes are matched exactly (upper case): "usd" is unknown, so a typo cannot slip
 * through as a different currency; normalise at the input boundary if you need to.
 */
export function currencyDigits(code: string): number | undefined {
  return TABLE.get(code);
}

export function isKnownCurrency(code: string): boolean {
  return TABLE.has(code);
}
