// The view toolkit: preact's h bound to htm's tagged templates, so views
// are written as HTML-like templates with no build step. Every ${value}
// inside a template is a text node or a property, never parsed as markup:
// a hostile service or route name stays text.
import { h, render } from './vendor/preact.js';
import htm from './vendor/htm.js';

export const html = htm.bind(h);
export { render };
export {
  useState, useEffect, useRef, useMemo, useCallback,
} from './vendor/hooks.js';
