-- Indexes that answer "does one of this user's rows name this file?" (asked once per file
-- an import restores) without reading every row of the user's: an image by its file name
-- or by its stem (a range of the same index), an avatar by the last segment of a
-- character's or persona's path. The avatar indexes hold rows with a path only.
DROP INDEX IF EXISTS lvbak_images_user;
CREATE INDEX IF NOT EXISTS lvbak_images_user_filename ON images(user_id, filename);
CREATE INDEX IF NOT EXISTS lvbak_characters_user_avatar_name ON characters(
    user_id,
    replace(replace(avatar_path, '\', '/'), rtrim(replace(avatar_path, '\', '/'), replace(replace(avatar_path, '\', '/'), '/', '')), '')
) WHERE avatar_path IS NOT NULL;
CREATE INDEX IF NOT EXISTS lvbak_personas_user_avatar_name ON personas(
    user_id,
    replace(replace(avatar_path, '\', '/'), rtrim(replace(avatar_path, '\', '/'), replace(replace(avatar_path, '\', '/'), '/', '')), '')
) WHERE avatar_path IS NOT NULL;
