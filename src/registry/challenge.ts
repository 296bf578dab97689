/** Parsing `WWW-Authenticate` (RFC 7235): `Bearer realm="...",service="...",scope="..."`, possibly several challenges. */

export interface Challenge {
  /** Lower-cased: `basic`, `bearer`... */
  scheme: string;
  params: Record<string, string>;
}

export function parseChallenges(value: string | undefined): Challenge[] {
  if (value === undefined) return [];
  const out: Challenge[] = [];
  let i = 0;
  const n = value.length;
  const skipSpace = (): void => {
    while (i < n && /[\s,]/.test(value[i]!)) i++;
  };
  const token = (): string => {
    const start = i;
    while (i < n && /[^\s,=]/.test(value[i]!)) i++;
    return value.slice(start, i);
  };
  let current: Challenge | undefined;
  while (i < n) {
    skipSpace();
    if (i >= n) break;
    const word = token();
    if (word === '') {
      i++;
      continue;
    }
    let j = i;
    while (j < n && value[j] === ' ') j++;
    if (value[j] === '=' && current !== undefined) {
      i = j + 1;
      while (i < n && value[i] === ' ') i++;
      let v = '';
      if (value[i] === '"') {
        i++;
        while (i < n && value[i] !== '"') {
          if (value[i] === '\\' && i + 1 < n) i++;
          v += value[i];
          i++;
        }
        i++;
      } else {
        v = token();
      }
      current.params[word.toLowerCase()] = v;
    } else {
      current = { scheme: word.toLowerCase(), params: {} };
      out.push(current);
    }
  }
  return out;
}
