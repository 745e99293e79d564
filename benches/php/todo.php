<?php
// The PHP-FPM side of benches/todo.sh: the routes of nene's examples/todo
// that the benchmark calls, as a PHP front controller with PDO — login and
// the logged-in list — on the same database (the tables examples/todo
// creates; its Argon2id hashes are PHP's password_hash format too).
//
// From fastcgi_params: TODO_PDO_DSN (sqlite:/path or
// mysql:host=…;port=…;dbname=…), TODO_PDO_USER, TODO_PDO_PASSWORD,
// REDIS_SAVE_PATH (phpredis's session handler, locking on in php.ini, as
// nene's Redis handler locks).

declare(strict_types=1);

function respond(int $status, array $body): never
{
    http_response_code($status);
    header('Content-Type: application/json');
    echo json_encode($body);
    exit;
}

function failure(int $status, string $code, string $message): never
{
    respond($status, ['success' => false, 'error' => ['code' => $code, 'message' => $message]]);
}

function database(): PDO
{
    try {
        // Persistent: one connection per worker, as a tuned PHP site runs.
        return new PDO(
            $_SERVER['TODO_PDO_DSN'],
            $_SERVER['TODO_PDO_USER'] ?? null,
            $_SERVER['TODO_PDO_PASSWORD'] ?? null,
            [PDO::ATTR_PERSISTENT => true, PDO::ATTR_ERRMODE => PDO::ERRMODE_EXCEPTION]
        );
    } catch (PDOException $e) {
        error_log('database: ' . $e->getMessage());
        failure(503, 'DATABASE-UNAVAILABLE', 'the database is unavailable; try again shortly');
    }
}

ini_set('session.save_handler', 'redis');
ini_set('session.save_path', $_SERVER['REDIS_SAVE_PATH']);
session_name('NENESESSID');
session_set_cookie_params(['path' => '/', 'httponly' => true, 'samesite' => 'Lax']);

$route = trim((string) parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH), '/');
// The list only reads the session: read_and_close, as nene's todo app takes
// its ReadOnlySession there (phpredis still takes and drops its lock for
// the read; nene does not).
$readOnly = ($_SERVER['REQUEST_METHOD'] ?? '') === 'GET' && $route === 'todo/index';
if (!session_start($readOnly ? ['read_and_close' => true] : [])) {
    failure(503, 'SESSION-UNAVAILABLE', 'the session store is unavailable');
}
switch ($_SERVER['REQUEST_METHOD'] . ' ' . $route) {
    case 'POST auth/login':
        $input = json_decode((string) file_get_contents('php://input'), true);
        if (!is_array($input) || !is_string($input['username'] ?? null) || !is_string($input['password'] ?? null)) {
            failure(400, 'INPUT-INVALID', 'username and password are required');
        }
        $query = database()->prepare('SELECT id, password_hash FROM users WHERE username = ?');
        $query->execute([$input['username']]);
        $user = $query->fetch(PDO::FETCH_ASSOC);
        if ($user === false || !password_verify($input['password'], $user['password_hash'])) {
            failure(401, 'AUTH-INVALID', 'unknown user name or wrong password');
        }
        session_regenerate_id(true);
        $_SESSION['user'] = ['id' => (int) $user['id'], 'username' => $input['username']];
        session_write_close();
        respond(200, ['success' => true, 'data' => ['user' => $_SESSION['user']]]);
    case 'GET todo/index':
        $user = $_SESSION['user'] ?? null;
        if ($user === null) {
            failure(401, 'AUTH-REQUIRED', 'log in first');
        }
        $query = database()->prepare('SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id');
        $query->execute([$user['id']]);
        $todos = array_map(
            fn (array $row): array => ['id' => (int) $row['id'], 'title' => $row['title'], 'done' => (bool) $row['done']],
            $query->fetchAll(PDO::FETCH_ASSOC)
        );
        respond(200, ['success' => true, 'data' => $todos]);
    case 'GET list':
        // The HTML list page of examples/todo (src/pages.rs,
        // templates/list.html) as a plain PHP template: the same markup,
        // every value through htmlspecialchars, the session's CSRF token in
        // each form, the flash messages read once.
        $user = $_SESSION['user'] ?? null;
        if ($user === null) {
            header('Location: /account/login', true, 303);
            exit;
        }
        $token = $_SESSION['_token'] ??= bin2hex(random_bytes(32));
        $flashes = $_SESSION['_symfony_flashes'] ?? [];
        unset($_SESSION['_symfony_flashes']);
        session_write_close();
        $query = database()->prepare('SELECT id, title, done FROM todos WHERE user_id = ? ORDER BY id');
        $query->execute([$user['id']]);
        $todos = $query->fetchAll(PDO::FETCH_ASSOC);
        $e = fn (string $text): string => htmlspecialchars($text, ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
        $field = '<input type="hidden" name="_token" value="' . $token . '">';
        header('Content-Type: text/html; charset=utf-8');
        header('Cache-Control: no-store');
        ?>
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>My todos · Todo</title>
</head>
<body>
<header>
<strong>Todo</strong>
<span id="user"><?= $e($user['username']) ?></span>
<form method="post" action="/account/logout" class="inline">
<?= $field ?>
<button id="logout">Log out</button>
</form>
</header>
<?php foreach ($flashes as $kind => $messages): foreach ($messages as $message): ?>
<p class="flash <?= $e($kind) ?>"><?= $e($message) ?></p>
<?php endforeach; endforeach; ?>
<main>
<h1>My todos</h1>
<form method="post" action="/list/add">
<?= $field ?>
<input name="title" value="" aria-label="New todo" maxlength="200" required>
<button id="add">Add</button>
</form>
<ul id="todos">
<?php foreach ($todos as $todo): ?>
<li class="<?= $todo['done'] ? 'done' : '' ?>">
<span class="title"><?= $e($todo['title']) ?></span>
<form method="post" action="/list/toggle" class="inline">
<?= $field ?>
<input type="hidden" name="id" value="<?= (int) $todo['id'] ?>">
<button class="toggle"><?= $todo['done'] ? 'Undo' : 'Done' ?></button>
<button class="delete" formaction="/list/delete">Delete</button>
</form>
</li>
<?php endforeach; ?>
<?php if (!$todos): ?>
<li class="empty">Nothing to do.</li>
<?php endif; ?>
</ul>
</main>
</body>
</html>
<?php
        exit;
    default:
        failure(404, 'NOT-FOUND', 'no such route');
}
