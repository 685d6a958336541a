// The page registry: every page of the UI, in nav order. `id` is the
// page's name in the URL (`#/<id>`), `title` its name in the nav,
// `module` the ES module whose default export draws it (loaded when first
// shown); `nav: false` keeps a page out of the nav (it is reached by a
// link). To add a page: add its module beside this file, one line here,
// and its file to the ASSETS table in src/ui/assets.rs.
export const PAGES = [
  { id: 'services', title: 'Services', module: './services.js' },
  { id: 'service', title: 'Service', module: './service.js', nav: false },
  { id: 'callmap', title: 'Call map', module: './callmap.js' },
  { id: 'journey', title: 'Journeys', module: './journey.js' },
  { id: 'alerts', title: 'Alerts', module: './alerts.js' },
];
