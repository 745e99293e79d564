<?php
// The PHP-FPM side of benches/compare.sh: NeNe's front controller reduced to
// the routes the benchmark calls, with nene's bootstrap order: ini files into
// constants (environment over ini), the session cookie, the session save
// handler chosen by SESSION_DSN, the session, then /{controller}/{action}.
//
// SESSION_DSN (environment NENE_SESSION_DSN, here a fastcgi_param):
//   ''                                 PHP's file sessions
//   redis://host:port[/db]             RedisSessionHandler (NeNe's, no locking)
//   redis://host:port[/db]?handler=phpredis
//                                      phpredis's own handler; its locking is
//                                      configured in benches/php/php.ini

declare(strict_types=1);

require __DIR__ . '/RedisSessionHandler.php';

const REPO = __DIR__ . '/../..';

/** ini/system.ini then ini/site.ini: [session] gc_maxlifetime -> SESSION_GC_MAXLIFETIME. */
function loadConstants(string $iniDir): void
{
    $settings = [];
    foreach (['system.ini', 'site.ini'] as $file) {
        $sections = parse_ini_file("$iniDir/$file", true, INI_SCANNER_TYPED);
        if ($sections === false) {
            throw new RuntimeException("cannot parse $iniDir/$file");
        }
        foreach ($sections as $section => $values) {
            foreach ($values as $key => $value) {
                $settings[strtoupper("{$section}_{$key}")] = $value;
            }
        }
    }
    $dsn = getenv('NENE_SESSION_DSN');
    if ($dsn !== false) {
        $settings['SESSION_DSN'] = $dsn;
    }
    foreach ($settings as $name => $value) {
        defined($name) || define($name, $value);
    }
}

function setting(string $name, mixed $default): mixed
{
    return defined($name) ? constant($name) : $default;
}

function configureSessionCookie(): void
{
    session_name(setting('SESSION_NAME', 'NENESESSID'));
    ini_set('session.gc_maxlifetime', (string) setting('SESSION_GC_MAXLIFETIME', 1440));
    session_set_cookie_params([
        'lifetime' => 0,
        'path' => '/',
        'secure' => ($_SERVER['HTTPS'] ?? '') === 'on',
        'httponly' => true,
        'samesite' => 'Lax',
    ]);
}

function configureSessionHandler(string $dsn): void
{
    if ($dsn === '') {
        return; // PHP's file sessions, under the pool's session.save_path
    }
    $url = parse_url($dsn);
    if ($url === false || ($url['scheme'] ?? '') !== 'redis' || !isset($url['host'])) {
        throw new RuntimeException("SESSION_DSN: not redis://host:port[/db]: '$dsn'");
    }
    $port = $url['port'] ?? 6379;
    $db = (int) ltrim($url['path'] ?? '', '/');
    parse_str($url['query'] ?? '', $query);

    if (($query['handler'] ?? '') === 'phpredis') {
        ini_set('session.save_handler', 'redis');
        $database = $db !== 0 ? "&database=$db" : ''; // a SELECT per request otherwise
        ini_set('session.save_path', "tcp://{$url['host']}:$port?persistent=1&prefix=sess_$database");
        return;
    }
    $redis = new Redis();
    $redis->pconnect($url['host'], $port, 1.0);
    if ($db !== 0) {
        $redis->select($db);
    }
    session_set_save_handler(new RedisSessionHandler($redis, (int) ini_get('session.gc_maxlifetime')), true);
}

/** The routes: "controller/action" => [uses the session, action]. */
function routes(): array
{
    return [
        'health/index' => [false, fn (): array => [200, ['status' => 'ok']]],
        'session/counter' => [true, function (): array {
            $_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
            return [200, ['count' => $_SESSION['count']]];
        }],
    ];
}

function respond(int $status, array $body): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body);
    exit;
}

loadConstants(REPO . '/ini');
configureSessionCookie();
configureSessionHandler((string) setting('SESSION_DSN', ''));

$path = trim((string) parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH), '/');
[$controller, $action] = explode('/', $path, 2) + ['', ''];
$route = routes()[($controller ?: 'index') . '/' . ($action ?: 'index')] ?? null;
if ($route === null) {
    http_response_code(404);
    header('Content-Type: text/html; charset=utf-8');
    readfile(REPO . '/htdocs/404.html');
    exit;
}
[$usesSession, $handle] = $route;

// Like nene's lazy session, a route that does not use the session does not
// start one (no Set-Cookie, no store access on /health).
if ($usesSession && !session_start()) {
    respond(503, ['error' => 'session unavailable']);
}
[$status, $body] = $handle();
// Saved before the answer, as nene does: a 200 means the write happened.
if ($usesSession && !session_write_close()) {
    respond(500, ['error' => 'session not saved']);
}
respond($status, $body);
