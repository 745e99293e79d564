<?php
// The PHP side of tests/php_session_sharing.rs: a few routes of a PHP site
// under /php/ sharing sessions with nene. The pool's settings (php_value in
// the test's php-fpm.conf) choose the save handler and serialize handler;
// SESSION_HANDLER=nene_redis uses NeNe's own PHP Redis handler instead of
// phpredis'.

declare(strict_types=1);

ob_start();
if (getenv('SESSION_HANDLER') === 'nene_redis') {
    require __DIR__ . '/../../benches/php/RedisSessionHandler.php';
    $redis = new Redis();
    $redis->connect('127.0.0.1', (int) getenv('REDIS_PORT'));
    session_set_save_handler(new RedisSessionHandler($redis, 1440), true);
}

function respond(array $body): never
{
    header('Content-Type: application/json');
    echo json_encode($body);
    exit;
}

$path = (string) parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH);
if (!session_start()) {
    http_response_code(503);
    respond(['error' => 'session unavailable']);
}
switch ($path) {
    case '/php/login':
        session_regenerate_id(true);
        $_SESSION['user'] = (string) ($_POST['user'] ?? '');
        $body = ['user' => $_SESSION['user']];
        break;
    case '/php/whoami':
        $body = ['user' => $_SESSION['user'] ?? null];
        break;
    case '/php/counter':
        $_SESSION['count'] = ($_SESSION['count'] ?? 0) + 1;
        $body = ['count' => $_SESSION['count']];
        break;
    default:
        http_response_code(404);
        $body = ['error' => 'no such page'];
}
if (!session_write_close()) {
    http_response_code(500);
    respond(['error' => 'session not saved']);
}
respond($body);
